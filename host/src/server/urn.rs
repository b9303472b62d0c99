//! Function URNs: `urn:fss:{region}:{project_id}:function:{package}:{name}[:{qualifier}]`.
//! The API also accepts a plain function name (optionally `name:qualifier`).

/// The region fnhost reports in URNs.
pub const REGION: &str = "local";

/// A parsed function reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// Package (function group), when the URN names one.
    pub package: Option<String>,
    /// Function name.
    pub name: String,
    /// Version or alias, when given.
    pub qualifier: Option<String>,
}

impl FunctionRef {
    /// Parses a URN or `name[:qualifier]`.
    pub fn parse(s: &str) -> Option<FunctionRef> {
        let parts: Vec<&str> = s.split(':').collect();
        let (package, name, qualifier) = match parts.as_slice() {
            ["urn", "fss", _region, _project, "function", package, name] => {
                (Some(*package), *name, None)
            }
            ["urn", "fss", _region, _project, "function", package, name, q] => {
                (Some(*package), *name, Some(*q))
            }
            [name] => (None, *name, None),
            [name, q] => (None, *name, Some(*q)),
            _ => return None,
        };
        if name.is_empty() {
            return None;
        }
        Some(FunctionRef {
            package: package.map(str::to_owned),
            name: name.to_owned(),
            qualifier: qualifier.filter(|q| !q.is_empty()).map(str::to_owned),
        })
    }

    /// The registry target: `name` or `name:qualifier`.
    pub fn target(&self) -> String {
        match &self.qualifier {
            Some(q) => format!("{}:{q}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The URN of a function (without qualifier).
pub fn function_urn(project: &str, package: &str, name: &str) -> String {
    format!("urn:fss:{REGION}:{project}:function:{package}:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urns_with_and_without_qualifier() {
        let r = FunctionRef::parse("urn:fss:local:p1:function:default:echo:latest").unwrap();
        assert_eq!(r.package.as_deref(), Some("default"));
        assert_eq!(r.target(), "echo:latest");
        let r = FunctionRef::parse("urn:fss:cn-north-4:p1:function:shop:orders").unwrap();
        assert_eq!(r.target(), "orders");
        assert_eq!(
            FunctionRef::parse("orders:prod").unwrap().target(),
            "orders:prod"
        );
        assert_eq!(FunctionRef::parse("orders").unwrap().qualifier, None);
        assert!(FunctionRef::parse("urn:fss:x").is_none());
        assert!(FunctionRef::parse("").is_none());
        assert_eq!(
            function_urn("p1", "default", "echo"),
            "urn:fss:local:p1:function:default:echo"
        );
    }
}
