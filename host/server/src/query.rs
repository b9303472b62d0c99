//! Query strings as the API reads them: every parameter optional, a repeated
//! one taken at its last value, and anything malformed refused in
//! FunctionGraph's error shape (axum's `Query` answers a duplicate field or a
//! bad number with a plain-text 400 that no SDK can read).

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

/// The query's parameters (last value wins).
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    /// Parses `query` (`a=1&b=x`, percent-encoded).
    pub(crate) fn parse(query: &str) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
        Ok(Params(pairs.into_iter().collect()))
    }

    /// A parameter's text.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    /// A numeric parameter (400 when it is not a number of this type).
    pub(crate) fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.0
            .get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!("`{name}` must be a number, not `{v}`"))
                })
            })
            .transpose()
    }

    /// A numeric parameter, or `None` when it is absent or not a number
    /// (FunctionGraph's `marker` and `limit` are lenient).
    pub(crate) fn lenient<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.0.get(name).and_then(|v| v.parse().ok())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Params::parse(parts.uri.query().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_take_the_last_value_and_bad_numbers_are_refused() {
        let p = Params::parse("a=1&a=2&b=x%20y&n=null").unwrap();
        assert_eq!(p.text("a").as_deref(), Some("2"));
        assert_eq!(p.text("b").as_deref(), Some("x y"));
        assert_eq!(p.number::<u64>("a").unwrap(), Some(2));
        assert!(p.number::<u64>("n").is_err());
        assert_eq!(p.lenient::<u64>("n"), None);
        assert_eq!(p.number::<u64>("missing").unwrap(), None);
    }
}
