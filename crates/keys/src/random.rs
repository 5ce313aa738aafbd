//! Randomness from the operating system's CSPRNG (`getrandom`).

/// The operating system's random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// Fills `out` from the OS CSPRNG.
///
/// # Errors
/// [`RandomError`] when the OS refuses; never silently falls back to a weaker source.
pub(crate) fn fill(out: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(out).map_err(|_| RandomError)
}

/// An array of random bytes.
///
/// # Errors
/// As [`fill`].
pub(crate) fn bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}
