//! Starting and stopping the server.

use std::future::Future;

use tokio::net::TcpListener;

use crate::{AppState, Config, Database, VendError, router};

/// Connects the database (running its migrations), binds `config.listen` and serves until
/// `shutdown` completes; then stops accepting, lets in-flight requests finish, and closes
/// the database.
///
/// # Errors
/// Database connection or migration, bind, and serve failures.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), VendError> {
    let db = Database::connect(&config.database_url).await?;
    let listener = TcpListener::bind(config.listen).await?;
    let state = AppState::new(
        db.clone(),
        config.security_module,
        config.key_change_policy,
        config.body_limit,
    );
    serve_on(listener, state, shutdown).await?;
    db.close().await;
    Ok(())
}

/// Serves `state` on a bound listener until `shutdown` completes, then finishes in-flight
/// requests.
///
/// # Errors
/// Serve failures.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), VendError> {
    tracing::info!(
        address = %listener.local_addr()?,
        security_module = state.security_module().id().as_str(),
        "serving"
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("stopped: in-flight requests finished");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM: the usual `shutdown` for [`serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
