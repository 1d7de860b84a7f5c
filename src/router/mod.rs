//! Statement inspection for routing decisions.
//!
//! For now the proxy needs only the leading keyword of each statement in a
//! query string (to refuse session-only commands under transaction pooling);
//! the sharding router builds on the same tokenizer.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The first keyword of every statement in `sql` (statements separated by
/// `;`), skipping comments, strings and dollar-quoted bodies the way
/// Postgres' lexer does. Text that does not tokenize yields no keywords:
/// the server will report the syntax error itself.
pub fn statement_keywords(sql: &str) -> Vec<String> {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Vec::new();
    };
    let mut keywords = Vec::new();
    let mut at_start = true;
    for token in tokens {
        match token {
            Token::Whitespace(_) => {}
            Token::SemiColon => at_start = true,
            Token::Word(word) if at_start => {
                keywords.push(word.value);
                at_start = false;
            }
            _ => at_start = false,
        }
    }
    keywords
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_statements_first_keyword() {
        assert_eq!(
            statement_keywords("select 1; LISTEN chan"),
            vec!["select", "LISTEN"]
        );
        assert_eq!(
            statement_keywords("/* listen */ -- listen\n select 'listen; x'"),
            vec!["select"]
        );
        assert_eq!(
            statement_keywords("do $$ begin perform 1; listen x; end $$"),
            vec!["do"]
        );
        assert!(statement_keywords("").is_empty());
    }
}
