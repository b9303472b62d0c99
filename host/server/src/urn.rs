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

/// A function reference borrowed from the string it was parsed from (no
/// allocation: it is parsed on every invocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionRefStr<'a> {
    /// Package (function group), when the URN names one.
    pub package: Option<&'a str>,
    /// Function name.
    pub name: &'a str,
    /// The registry target: `name` or `name:qualifier`.
    pub target: &'a str,
}

impl<'a> FunctionRefStr<'a> {
    /// Parses a URN or `name[:qualifier]`.
    pub fn parse(s: &'a str) -> Option<FunctionRefStr<'a>> {
        let mut parts = [""; 9];
        let mut n = 0;
        for part in s.split(':') {
            if n == parts.len() {
                return None;
            }
            parts[n] = part;
            n += 1;
        }
        let (package, name, qualifier) = match &parts[..n] {
            ["urn", "fss", _region, _project, "function", package, name] => {
                (Some(*package), *name, "")
            }
            ["urn", "fss", _region, _project, "function", package, name, q] => {
                (Some(*package), *name, *q)
            }
            [name] => (None, *name, ""),
            [name, q] => (None, *name, *q),
            _ => return None,
        };
        if name.is_empty() {
            return None;
        }
        // `name[:qualifier]` is the end of `s`; an empty qualifier is none.
        let target = if qualifier.is_empty() {
            name
        } else {
            &s[s.len() - name.len() - 1 - qualifier.len()..]
        };
        Some(FunctionRefStr {
            package,
            name,
            target,
        })
    }
}

impl FunctionRef {
    /// Parses a URN or `name[:qualifier]`.
    pub fn parse(s: &str) -> Option<FunctionRef> {
        let r = FunctionRefStr::parse(s)?;
        Some(FunctionRef {
            package: r.package.map(str::to_owned),
            name: r.name.to_owned(),
            qualifier: r.target.split_once(':').map(|(_, q)| q.to_owned()),
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
        assert!(FunctionRef::parse("urn:fss:r:p:function:pkg:name:q:extra").is_none());
        assert_eq!(FunctionRef::parse("orders:").unwrap().qualifier, None);
        let r = FunctionRefStr::parse("urn:fss:r:p:function:pkg:orders:prod").unwrap();
        assert_eq!(
            (r.package, r.name, r.target),
            (Some("pkg"), "orders", "orders:prod")
        );
        let r = FunctionRefStr::parse("urn:fss:r:p:function:pkg:orders:").unwrap();
        assert_eq!(r.target, "orders");
        assert!(FunctionRef::parse("").is_none());
        assert_eq!(
            function_urn("p1", "default", "echo"),
            "urn:fss:local:p1:function:default:echo"
        );
    }
}
