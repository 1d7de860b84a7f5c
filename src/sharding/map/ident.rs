//! Names written in a shard map, read as SQL reads identifiers.
//!
//! The router compares the names it finds in statements (unquoted ones
//! folded to lower case, quoted ones kept) with the map's names, so the map
//! follows the same rule: `Clients` and `clients` are one table, while
//! `"Clients"` is another.

/// Splits a possibly qualified name (`table`, `schema.table`, either part
/// double-quoted, `""` standing for a quote inside quotes) into its parts,
/// unquoted parts folded to lower case as Postgres folds them (ASCII only).
/// `None` for an empty part, an unterminated quote, or an unquoted part
/// holding whitespace or a quote.
pub(super) fn parse_qualified(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' if chars.next_if_eq(&'"').is_some() => part.push('"'),
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|&c| c != '.') {
                if c.is_whitespace() || c == '"' {
                    return None;
                }
                part.push(c.to_ascii_lowercase());
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> Option<Vec<&str>> {
        // Leaks are fine in a test: they keep the assertions short.
        parse_qualified(text).map(|p| p.into_iter().map(|s| &*s.leak()).collect())
    }

    #[test]
    fn unquoted_names_fold_to_lower_case() {
        assert_eq!(parts("Clients"), Some(vec!["clients"]));
        assert_eq!(parts(" Sales.Orders "), Some(vec!["sales", "orders"]));
        assert_eq!(parts("été"), Some(vec!["été"]));
    }

    #[test]
    fn quoted_names_keep_case_dots_and_quotes() {
        assert_eq!(parts(r#""Clients""#), Some(vec!["Clients"]));
        assert_eq!(parts(r#"s."a.b""#), Some(vec!["s", "a.b"]));
        assert_eq!(parts(r#""say ""hi""""#), Some(vec![r#"say "hi""#]));
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            "", " ", ".", "a.", ".a", "a..b", "\"\"", "\"open", "a b", "a\"b", "\"a\"b",
        ] {
            assert_eq!(parts(bad), None, "{bad:?}");
        }
    }
}
