//! Token-level work on SQL text: splitting a query string into statements,
//! finding comments, renumbering `$n` placeholders and spotting table names
//! in text the parser could not (or need not) understand.
//!
//! Everything goes through sqlparser's tokenizer, so strings, quoted
//! identifiers, comments and dollar-quoted bodies are never mistaken for
//! separators, placeholders or names.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer, Whitespace};

/// The tokens of `sql` with their positions, or `None` when the text does
/// not tokenize (an unterminated string or comment: the server reports it).
pub(super) fn tokenize(sql: &str) -> Option<Vec<TokenWithSpan>> {
    Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()
}

/// Converts tokenizer locations (1-based lines and character columns) to
/// byte offsets in the text they came from.
pub(super) struct Offsets<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Offsets<'a> {
    /// Indexes the line starts of `text`.
    pub(super) fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Offsets { text, line_starts }
    }

    /// Byte offset of `location`, clamped to the text.
    pub(super) fn of(&self, location: Location) -> usize {
        let line = usize::try_from(location.line.saturating_sub(1)).unwrap_or(usize::MAX);
        let Some(&start) = self.line_starts.get(line) else {
            return self.text.len();
        };
        let column = usize::try_from(location.column.saturating_sub(1)).unwrap_or(usize::MAX);
        self.text[start..]
            .char_indices()
            .nth(column)
            .map_or(self.text.len(), |(at, _)| start + at)
    }
}

/// The statements of a query string: the text between top-level `;`
/// separators, trimmed, skipping empty ones (a string of only comments
/// yields nothing). Text that does not tokenize is one statement.
pub(super) fn split_statements(sql: &str) -> Vec<&str> {
    let Some(tokens) = tokenize(sql) else {
        return non_empty(sql).into_iter().collect();
    };
    let offsets = Offsets::new(sql);
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut has_content = false;
    for token in &tokens {
        match &token.token {
            Token::SemiColon => {
                let end = offsets.of(token.span.start);
                if has_content {
                    pieces.extend(non_empty(&sql[start..end]));
                }
                start = end + 1;
                has_content = false;
            }
            Token::Whitespace(_) => {}
            _ => has_content = true,
        }
    }
    if has_content {
        pieces.extend(non_empty(&sql[start.min(sql.len())..]));
    }
    pieces
}

/// `text` trimmed, or `None` when nothing is left.
fn non_empty(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then_some(trimmed)
}

/// The bodies of all comments in `sql`, in order.
pub(super) fn comments(sql: &str) -> Vec<String> {
    tokenize(sql)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|token| match token.token {
            Token::Whitespace(Whitespace::SingleLineComment { comment, .. }) => Some(comment),
            Token::Whitespace(Whitespace::MultiLineComment(comment)) => Some(comment),
            _ => None,
        })
        .collect()
}

/// The leading keywords of a statement, uppercased (at most `count`):
/// how statements the parser rejects are still recognized.
pub(super) fn leading_words(sql: &str, count: usize) -> Vec<String> {
    tokenize(sql)
        .unwrap_or_default()
        .into_iter()
        .filter(|token| !matches!(token.token, Token::Whitespace(_)))
        .take(count)
        .map(|token| match token.token {
            Token::Word(word) if word.quote_style.is_none() => word.value.to_uppercase(),
            other => other.to_string(),
        })
        .collect()
}

/// Every identifier in `sql` as Postgres folds it (unquoted lowercased,
/// quoted kept), including those in dollar-quoted bodies (`DO $$ ... $$`):
/// candidates for table names in statements the router does not analyze
/// structurally.
pub(super) fn identifiers(sql: &str) -> Vec<String> {
    let Some(tokens) = tokenize(sql) else {
        // Text the tokenizer rejects may still be valid for the server:
        // every word counts, so no table name is missed.
        return sql
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|word| !word.is_empty())
            .map(str::to_lowercase)
            .collect();
    };
    let mut found = Vec::new();
    for token in tokens {
        match token.token {
            Token::Word(word) => found.push(match word.quote_style {
                Some(_) => word.value,
                None => word.value.to_lowercase(),
            }),
            Token::DollarQuotedString(body) => found.extend(identifiers(&body.value)),
            _ => {}
        }
    }
    found
}

/// The longest run of operators (`=`, `+`, `::`, `AND`, `OR`, ...) at one
/// parenthesis level between commas: how deep the left-leaning chain of
/// binary expressions the parser would build can get. Recursive walks of
/// the syntax tree (the router's, and sqlparser's own `Display`, `Clone`
/// and `Drop`) need stack in proportion to it.
pub(super) fn longest_operator_chain(sql: &str) -> usize {
    let mut runs = vec![0usize];
    let mut longest = 0;
    for token in tokenize(sql).unwrap_or_default() {
        match token.token {
            Token::LParen | Token::LBracket => runs.push(0),
            Token::RParen | Token::RBracket => {
                if runs.len() > 1 {
                    runs.pop();
                }
            }
            Token::Comma | Token::SemiColon => {
                if let Some(run) = runs.last_mut() {
                    *run = 0;
                }
            }
            Token::Word(word) => {
                let operator = word.quote_style.is_none()
                    && ["AND", "OR", "IS", "LIKE", "ILIKE", "COLLATE"]
                        .iter()
                        .any(|op| word.value.eq_ignore_ascii_case(op));
                if operator && let Some(run) = runs.last_mut() {
                    *run += 1;
                    longest = longest.max(*run);
                }
            }
            Token::Whitespace(_)
            | Token::Number(..)
            | Token::Placeholder(_)
            | Token::Period
            | Token::Colon
            | Token::EOF
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_) => {}
            _ => {
                if let Some(run) = runs.last_mut() {
                    *run += 1;
                    longest = longest.max(*run);
                }
            }
        }
    }
    longest
}

/// Renumbers the `$n` placeholders of `sql` from `$1` in order of first
/// appearance. Returns the new text and, for each new number, the original
/// one (`result.1[new - 1] == original`).
pub(super) fn renumber_placeholders(sql: &str) -> (String, Vec<usize>) {
    let Some(tokens) = tokenize(sql) else {
        return (sql.to_string(), Vec::new());
    };
    let offsets = Offsets::new(sql);
    let mut originals: Vec<usize> = Vec::new();
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for token in &tokens {
        let Token::Placeholder(name) = &token.token else {
            continue;
        };
        let Some(original) = placeholder_number(name) else {
            continue;
        };
        let position = match originals.iter().position(|&n| n == original) {
            Some(position) => position,
            None => {
                originals.push(original);
                originals.len() - 1
            }
        };
        let start = offsets.of(token.span.start);
        if start < copied || !sql[start..].starts_with(name.as_str()) {
            continue;
        }
        out.push_str(&sql[copied..start]);
        out.push_str(&format!("${}", position + 1));
        copied = start + name.len();
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    (out, originals)
}

/// The 1-based number of a `$n` placeholder.
pub(super) fn placeholder_number(name: &str) -> Option<usize> {
    name.strip_prefix('$')?.parse().ok().filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons_only() {
        assert_eq!(
            split_statements("select ';' ; /* ; */ select $$;$$;; -- x;\n"),
            vec!["select ';'", "/* ; */ select $$;$$"]
        );
        assert_eq!(split_statements("  "), Vec::<&str>::new());
        assert_eq!(split_statements("-- only a comment"), Vec::<&str>::new());
        assert_eq!(
            split_statements("select 'é';\nselect 2"),
            vec!["select 'é'", "select 2"]
        );
        assert_eq!(split_statements("select 'open"), vec!["select 'open"]);
    }

    #[test]
    fn measures_operator_chains() {
        assert_eq!(longest_operator_chain("select 1"), 0);
        assert_eq!(
            longest_operator_chain("select a from t where a = 1 and b = 2"),
            3
        );
        assert_eq!(longest_operator_chain("values (-1, -2), (-3, -4)"), 1);
        assert_eq!(longest_operator_chain("select (a=1) or (b=2) or (c=3)"), 2);
        assert_eq!(
            longest_operator_chain("select 'a=b' || $$x+y$$ || E'z', $1::int"),
            2
        );
    }

    #[test]
    fn renumbers_placeholders_by_first_use() {
        let (sql, map) = renumber_placeholders("VALUES ($3, '$1', $7), ($3, $10)");
        assert_eq!(sql, "VALUES ($1, '$1', $2), ($1, $3)");
        assert_eq!(map, vec![3, 7, 10]);
    }

    #[test]
    fn reads_comments_words_and_identifiers() {
        assert_eq!(
            comments("select /* a */ 1 -- b\n"),
            vec![" a ".to_string(), " b".to_string()]
        );
        assert_eq!(
            leading_words("  prepare  transaction 'x'", 2),
            vec!["PREPARE", "TRANSACTION"]
        );
        assert_eq!(
            identifiers(r#"Lock "Orders", x.Y"#),
            vec!["lock", "Orders", "x", "y"]
        );
        assert_eq!(
            identifiers("do $b$ update T $b$"),
            vec!["do", "update", "t"]
        );
        assert_eq!(
            identifiers("select 'open from Orders"),
            vec!["select", "open", "from", "orders"]
        );
    }
}
