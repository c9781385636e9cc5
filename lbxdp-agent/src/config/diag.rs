//! Diagnostics in `haproxy -c`'s vocabulary: alerts make the configuration
//! invalid, warnings don't.
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Alert,
}

/// Where a directive came from: the file as the user named it and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl Origin {
    pub fn new(file: &str, line: usize) -> Self {
        Self {
            file: file.to_string(),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub severity: Severity,
    pub origin: Origin,
    pub message: String,
}

impl Diag {
    pub fn alert(origin: &Origin, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Alert,
            origin: origin.clone(),
            message: message.into(),
        }
    }

    pub fn warning(origin: &Origin, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            origin: origin.clone(),
            message: message.into(),
        }
    }

    pub fn is_alert(&self) -> bool {
        self.severity == Severity::Alert
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Alert => "[ALERT]",
            Severity::Warning => "[WARNING]",
        };
        write!(f, "{tag} {}: {}", self.origin, self.message)
    }
}

/// Collects diagnostics while parsing; parsing goes on after an alert, as
/// HAProxy's does, so one run reports every mistake it can.
#[derive(Debug, Default)]
pub struct Diags {
    pub list: Vec<Diag>,
}

impl Diags {
    pub fn alert(&mut self, origin: &Origin, message: impl Into<String>) {
        self.list.push(Diag::alert(origin, message));
    }

    pub fn warn(&mut self, origin: &Origin, message: impl Into<String>) {
        self.list.push(Diag::warning(origin, message));
    }

    pub fn has_alerts(&self) -> bool {
        self.list.iter().any(Diag::is_alert)
    }

    pub fn alert_count(&self) -> usize {
        self.list.iter().filter(|d| d.is_alert()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_haproxy_minus_c() {
        let o = Origin::new("haproxy.cfg", 12);
        assert_eq!(Diag::alert(&o, "bad").to_string(), "[ALERT] haproxy.cfg:12: bad");
        assert_eq!(Diag::warning(&o, "meh").to_string(), "[WARNING] haproxy.cfg:12: meh");
    }
}
