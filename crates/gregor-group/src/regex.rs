//! Topic subscription patterns of KIP-848. Kafka evaluates them with RE2/J; the `regex` crate has
//! RE2's syntax and its linear-time guarantee. A pattern must match the whole topic name.

#[derive(Debug, Clone)]
pub struct Regex(regex::Regex);

impl Regex {
    /// `None` when the pattern is not a valid expression.
    pub fn new(pattern: &str) -> Option<Regex> {
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .ok()
            .map(Regex)
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

#[cfg(test)]
mod tests {
    use super::Regex;

    #[test]
    fn whole_names_only() {
        let r = Regex::new("orders-.*").unwrap();
        assert!(r.is_match("orders-eu"));
        assert!(!r.is_match("old-orders-eu"));
        assert!(Regex::new("a|b").unwrap().is_match("b"));
        assert!(Regex::new("(unclosed").is_none());
    }
}
