//! Typed access to one JSON record: values arrive as strings or numbers, base dates as 1993
//! or 93, hex in either case (`shared/vectors/README.md`).

use std::str::FromStr;

use serde_json::Value;

/// One vector record.
#[derive(Clone, Debug)]
pub struct Record {
    value: Value,
    line_no: usize,
}

impl Record {
    /// Wraps a parsed JSON value read from line `line_no`.
    #[must_use]
    pub fn new(value: Value, line_no: usize) -> Self {
        Self { value, line_no }
    }

    /// The record's `id`, or `line N`.
    #[must_use]
    pub fn id(&self) -> String {
        self.text("id")
            .unwrap_or_else(|| format!("line {}", self.line_no))
    }

    /// The kind, `v`.
    #[must_use]
    pub fn kind(&self) -> Option<String> {
        self.text("v")
    }

    /// The reason a record cannot be checked: its `conf`/`confirmed` starts with `NOT`, or it
    /// is not a production vector.
    #[must_use]
    pub fn unconfirmable(&self) -> Option<String> {
        let conf = self
            .text("conf")
            .or_else(|| self.text("confirmed"))
            .unwrap_or_default();
        if conf.trim_start().starts_with("NOT") {
            return Some(conf);
        }
        if self.kind().as_deref() == Some("sta_block_sample_tables") {
            return Some(
                "not a production vector: its source applies the sample STA tables with another bit order"
                    .to_owned(),
            );
        }
        None
    }

    /// A sub-object (such as `inputs`) as a record of its own.
    #[must_use]
    pub fn nested(&self, name: &str) -> Option<Self> {
        self.value
            .get(name)
            .filter(|v| v.is_object())
            .map(|v| Self::new(v.clone(), self.line_no))
    }

    /// The raw JSON value of a field.
    #[must_use]
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.value.get(name).filter(|v| !v.is_null())
    }

    /// A field as text: strings as they are, numbers in decimal; `null` and absent are `None`.
    #[must_use]
    pub fn text(&self, name: &str) -> Option<String> {
        match self.raw(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The first present field of `names`, as text.
    #[must_use]
    pub fn first_text(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| self.text(n))
    }

    /// A field parsed with `FromStr`; absent is `Ok(None)`.
    ///
    /// # Errors
    /// The field is present but does not parse: a message naming the field.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.text(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| format!("field {name} ({text:?}): {e}")),
        }
    }

    /// A required field parsed with `FromStr`.
    ///
    /// # Errors
    /// Absent, or does not parse.
    pub fn require<T: FromStr>(&self, name: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.parse(name)?
            .ok_or_else(|| format!("field {name} is missing"))
    }

    /// A decimal integer field; absent is `Ok(None)`.
    ///
    /// # Errors
    /// Present but not a non-negative integer.
    pub fn integer(&self, name: &str) -> Result<Option<u64>, String> {
        self.parse::<u64>(name)
    }

    /// A hex field as an integer (upper or lower case); absent is `Ok(None)`.
    ///
    /// # Errors
    /// Present but not hex, or wider than 64 bits.
    pub fn hex(&self, name: &str) -> Result<Option<u64>, String> {
        match self.text(name) {
            None => Ok(None),
            Some(text) => u64::from_str_radix(text.trim(), 16)
                .map(Some)
                .map_err(|e| format!("field {name} ({text:?}) is not hex: {e}")),
        }
    }

    /// A field that is a list of strings or numbers, as text.
    #[must_use]
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        match self.raw(name)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
            ),
            Value::String(s) => Some(vec![s.clone()]),
            _ => None,
        }
    }

    /// A required 4-bit field (KENHO, KENLO ...).
    ///
    /// # Errors
    /// Absent, or not an integer 0-15.
    pub fn nibble(&self, name: &str) -> Result<u8, String> {
        let value = self
            .integer(name)?
            .ok_or_else(|| format!("field {name} is missing"))?;
        u8::try_from(value)
            .ok()
            .filter(|v| *v < 16)
            .ok_or_else(|| format!("field {name} is not a nibble"))
    }

    /// The `subclasses` list of a key change set record.
    ///
    /// # Errors
    /// Absent, or an entry that is not a number.
    pub fn subclasses(&self) -> Result<Vec<u8>, String> {
        self.list("subclasses")
            .ok_or("field subclasses is missing")?
            .iter()
            .map(|s| {
                s.trim()
                    .parse::<u8>()
                    .map_err(|e| format!("subclass {s:?}: {e}"))
            })
            .collect()
    }

    /// A field that is a list of objects, as records.
    #[must_use]
    pub fn objects(&self, name: &str) -> Vec<Self> {
        match self.raw(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter(|v| v.is_object())
                .map(|v| Self::new(v.clone(), self.line_no))
                .collect(),
            _ => Vec::new(),
        }
    }
}
