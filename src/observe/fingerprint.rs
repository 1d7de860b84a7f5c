//! Statement fingerprints: statements that differ only in constants, in
//! the length of an `IN (...)` list of constants, in whitespace, comments
//! or keyword case are one *shape*, with one normalized text and one stable
//! 64-bit fingerprint.
//!
//! Normalization works on sqlparser's tokens, so it needs no successful
//! parse: every statement a client sends has a fingerprint, even one the
//! parser rejects.
//! - Literals (numbers, strings of every quoting style, a sign directly
//!   before a number) and bind parameters become `$1`, `$2`, ... in order,
//!   so `WHERE id = 5` and `WHERE id = $1` share a shape.
//! - `IN (c1, c2, ...)` of constants becomes `IN (...)`.
//! - Unquoted words (keywords and identifiers) are folded to lower case, as
//!   Postgres folds identifiers; quoted identifiers keep case and quotes.
//! - Whitespace collapses to single spaces; comments are dropped.
//!
//! The fingerprint is XXH3-64 of the normalized text: stable across runs
//! and versions, so snapshot files and the index advisor can rely on it.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

/// A statement's shape: its normalized text and that text's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// 64-bit fingerprint of `normalized`.
    pub fingerprint: u64,
    /// The statement with constants replaced (see the module docs).
    pub normalized: String,
}

/// The shape of `sql`. Text the tokenizer cannot read (an unterminated
/// string) is fingerprinted as whitespace-collapsed text instead.
pub fn shape(sql: &str) -> Shape {
    let normalized = normalize(sql).unwrap_or_else(|| collapse_whitespace(sql));
    Shape {
        fingerprint: xxhash_rust::xxh3::xxh3_64(normalized.as_bytes()),
        normalized,
    }
}

/// One piece of the normalized text.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    /// A constant or parameter (numbered when rendered).
    Constant,
    /// `IN (...)`'s collapsed list.
    List,
    /// A keyword, folded to lower case.
    Keyword(String),
    /// Anything else (identifiers, operators, punctuation), as rendered.
    Text(String),
}

/// Keywords after which `-` or `+` is a sign, not an operator.
const SIGN_AFTER: &[&str] = &[
    "select", "where", "and", "or", "not", "then", "else", "when", "values", "set", "by", "in",
    "like", "between", "is", "return", "limit", "offset", "case", "having", "on",
];

fn normalize(sql: &str) -> Option<String> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut pieces: Vec<Piece> = Vec::new();
    for token in tokens {
        match token {
            Token::Whitespace(_) | Token::EOF => {}
            Token::Number(..) if ends_with_sign_of_constant(&pieces) => {
                pieces.pop();
                pieces.push(Piece::Constant);
            }
            token if is_constant(&token) => pieces.push(Piece::Constant),
            Token::RParen => {
                pieces.push(Piece::Text(")".to_string()));
                collapse_in_list(&mut pieces);
            }
            Token::Word(w) if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword => {
                pieces.push(Piece::Keyword(w.value.to_lowercase()));
            }
            token => pieces.push(Piece::Text(render(&token))),
        }
    }
    Some(join(&pieces))
}

/// Literals and bind parameters.
fn is_constant(token: &Token) -> bool {
    matches!(
        token,
        Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::Placeholder(_)
    ) || matches!(token, Token::Word(w) if matches!(w.keyword, Keyword::TRUE | Keyword::FALSE | Keyword::NULL) && w.quote_style.is_none())
}

/// Whether the last piece is a `-` or `+` that makes the number after it
/// a signed constant: it starts the text, or follows an operator, a comma,
/// `(` or a keyword such as `where`, rather than a value.
fn ends_with_sign_of_constant(pieces: &[Piece]) -> bool {
    let (before, sign) = match pieces {
        [.., before, Piece::Text(sign)] => (Some(before), sign),
        [Piece::Text(sign)] => (None, sign),
        _ => return false,
    };
    if sign != "-" && sign != "+" {
        return false;
    }
    match before {
        None => true,
        Some(Piece::Constant | Piece::List) => false,
        Some(Piece::Keyword(k)) => SIGN_AFTER.contains(&k.as_str()),
        Some(Piece::Text(t)) => !t
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '"' | ')' | ']')),
    }
}

/// `IN ( c , c , ... )` of constants at the end of `pieces` becomes `IN (...)`.
fn collapse_in_list(pieces: &mut Vec<Piece>) {
    let Some(open) = pieces
        .iter()
        .rposition(|p| *p == Piece::Text("(".to_string()))
    else {
        return;
    };
    let is_in = open > 0 && pieces[open - 1] == Piece::Keyword("in".to_string());
    let inner = &pieces[open + 1..pieces.len() - 1];
    let only_constants = !inner.is_empty()
        && inner.iter().enumerate().all(|(i, p)| {
            if i % 2 == 0 {
                *p == Piece::Constant
            } else {
                *p == Piece::Text(",".to_string())
            }
        })
        && inner.len() % 2 == 1;
    if is_in && only_constants {
        pieces.truncate(open);
        pieces.push(Piece::List);
    }
}

fn render(token: &Token) -> String {
    match token {
        Token::Word(w) => match w.quote_style {
            Some(q) => format!("{q}{}{q}", w.value),
            None => w.value.to_lowercase(),
        },
        other => other.to_string(),
    }
}

/// Joins pieces with single spaces, except around `.`, `::`, `)`, `,`,
/// `[`/`]`, and before the `(` of a function call.
fn join(pieces: &[Piece]) -> String {
    let mut out = String::new();
    let mut number = 0;
    let mut previous: Option<&Piece> = None;
    for piece in pieces {
        let text = match piece {
            Piece::Constant => {
                number += 1;
                format!("${number}")
            }
            Piece::List => "(...)".to_string(),
            Piece::Keyword(t) | Piece::Text(t) => t.clone(),
        };
        let after = match previous {
            Some(Piece::Text(t)) => t.as_str(),
            _ => "",
        };
        let call = text == "("
            && matches!(previous, Some(Piece::Text(t)) if t.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"'));
        let tight = matches!(text.as_str(), "." | "::" | ")" | "," | "]" | ";" | "[")
            || matches!(after, "." | "::" | "(" | "[")
            || call;
        if !out.is_empty() && !tight {
            out.push(' ');
        }
        out.push_str(&text);
        previous = Some(piece);
    }
    out
}

fn collapse_whitespace(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::shape;

    fn same(a: &str, b: &str) {
        let (x, y) = (shape(a), shape(b));
        assert_eq!(x, y, "{a:?} and {b:?} should share a shape");
    }

    fn differ(a: &str, b: &str) {
        assert_ne!(shape(a).fingerprint, shape(b).fingerprint, "{a:?} vs {b:?}");
    }

    #[test]
    fn constants_become_numbered_placeholders() {
        assert_eq!(
            shape("SELECT * FROM t WHERE id = 5 AND name = 'x'").normalized,
            "select * from t where id = $1 and name = $2"
        );
        assert_eq!(
            shape("select a.b::text, f(1, -2.5e3) from s.t a where x > -1 and y - 1 < 2")
                .normalized,
            "select a.b::text, f($1, $2) from s.t a where x > $3 and y - $4 < $5"
        );
    }

    #[test]
    fn statements_differing_only_in_constants_share_a_shape() {
        same(
            "SELECT * FROM t WHERE id = 5",
            "select *  from T where ID = 12345",
        );
        same(
            "SELECT * FROM t WHERE id = 5",
            "SELECT * FROM t WHERE id = $1",
        );
        same(
            "SELECT * FROM t /* c */ WHERE s = 'a'  -- trailing\n",
            "SELECT * FROM t WHERE s = E'b\\n'",
        );
        same("SELECT $$x$$, true, null", "SELECT 'y', false, 7");
        same(
            "UPDATE t SET v = v + 1 WHERE id = 2",
            "UPDATE t SET v = v + 100 WHERE id = 9",
        );
    }

    #[test]
    fn in_lists_of_any_length_collapse() {
        same(
            "SELECT * FROM t WHERE id IN (1, 2, 3)",
            "SELECT * FROM t WHERE id IN (7)",
        );
        same(
            "SELECT * FROM t WHERE id in ($1,$2)",
            "SELECT * FROM t WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8)",
        );
        assert_eq!(
            shape("SELECT 1 FROM t WHERE a IN (1,2) AND b = 3").normalized,
            "select $1 from t where a in (...) and b = $2"
        );
        // A subquery or expressions in the list keep their shape.
        differ(
            "SELECT * FROM t WHERE id IN (SELECT id FROM u)",
            "SELECT * FROM t WHERE id IN (1, 2)",
        );
    }

    #[test]
    fn different_shapes_differ() {
        differ(
            "SELECT a FROM t WHERE id = 1",
            "SELECT b FROM t WHERE id = 1",
        );
        differ(
            "SELECT * FROM t WHERE id = 1",
            "SELECT * FROM u WHERE id = 1",
        );
        differ("SELECT * FROM \"T\"", "SELECT * FROM t");
        differ("SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE a > 1");
        differ("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1, 2)");
    }

    #[test]
    fn unreadable_text_still_has_a_fingerprint() {
        let s = shape("SELECT 'unterminated");
        assert_eq!(s.normalized, "SELECT 'unterminated");
        assert_eq!(s.fingerprint, shape("SELECT   'unterminated").fingerprint);
    }

    #[test]
    fn fingerprints_are_stable_across_builds() {
        // XXH3-64 of the normalized text: a changed value here breaks every
        // stored statistics snapshot.
        assert_eq!(
            shape("SELECT 1").fingerprint,
            xxhash_rust::xxh3::xxh3_64(b"select $1")
        );
    }
}
