//! The QBO query language subset: lexer, parser and syntax tree, plus literal escaping.
//!
//! `SELECT * | SELECT COUNT(*) FROM Entity [WHERE cond AND …] [ORDERBY|ORDER BY prop [ASC|DESC], …]
//! [STARTPOSITION n] [MAXRESULTS m]` (the last two in either order). Keywords are
//! case-insensitive; entity names are checked by the engine, not here. Errors carry the
//! `Detail` text Intuit sends: `QueryParserError: …` for syntax (fault code 4000) and
//! `QueryValidationError: …` for semantic problems (code 4001).

use std::fmt;

/// Largest `MAXRESULTS` QBO accepts.
pub const MAX_RESULTS_LIMIT: u64 = 1000;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `SELECT COUNT(*)` rather than `SELECT *`.
    pub count: bool,
    /// Entity name as written.
    pub entity: String,
    /// `WHERE` conditions, all joined by `AND`.
    pub conditions: Vec<Condition>,
    /// `ORDER BY` terms.
    pub order_by: Vec<OrderBy>,
    /// `STARTPOSITION` (1-based), if given.
    pub start_position: Option<u64>,
    /// `MAXRESULTS`, if given.
    pub max_results: Option<u64>,
}

/// One `property operator value` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Property name as written (matched case-insensitively).
    pub property: String,
    /// The operator.
    pub op: Op,
    /// The value; a [`Value::List`] for `IN`.
    pub value: Value,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `IN (…)`
    In,
    /// `LIKE '…%…'`
    Like,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `'quoted'`, unescaped.
    Str(String),
    /// A number as written, e.g. `10` or `100.50`.
    Number(String),
    /// `true` / `false`.
    Bool(bool),
    /// Any other bare word.
    Word(String),
    /// `(v, v, …)` after `IN`.
    List(Vec<Value>),
}

impl Value {
    /// The literal's text (without quotes); `None` for lists.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Number(s) | Value::Word(s) => Some(s),
            Value::Bool(true) => Some("true"),
            Value::Bool(false) => Some("false"),
            Value::List(_) => None,
        }
    }
}

/// One `ORDER BY` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    /// Property name as written.
    pub property: String,
    /// `DESC`.
    pub descending: bool,
}

/// A query the simulator refuses, with Intuit's fault code, message and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Syntax error: code 4000, "Error parsing query", detail `QueryParserError: …`.
    Parse(String),
    /// Semantic error: code 4001, "Invalid query", detail `QueryValidationError: …`.
    Validation(String),
}

impl QueryError {
    /// Fault `code`.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Parse(_) => "4000",
            QueryError::Validation(_) => "4001",
        }
    }

    /// Fault `Message`.
    pub fn message(&self) -> &'static str {
        match self {
            QueryError::Parse(_) => "Error parsing query",
            QueryError::Validation(_) => "Invalid query",
        }
    }

    /// Fault `Detail`.
    pub fn detail(&self) -> &str {
        match self {
            QueryError::Parse(d) | QueryError::Validation(d) => d,
        }
    }

    pub(crate) fn validation(msg: impl fmt::Display) -> Self {
        QueryError::Validation(format!("QueryValidationError: {msg}"))
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail())
    }
}

impl std::error::Error for QueryError {}

/// Quotes a string for use as a query literal, escaping `'` and `\` with a backslash.
pub fn escape_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tk {
    Word(String),
    Str(String),
    Num(String),
    Star,
    LParen,
    RParen,
    Comma,
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    Eof,
    /// A lexical error, reported only when the parser reaches it (as Intuit's streaming parser).
    Bad(String),
}

#[derive(Debug, Clone)]
struct Token {
    tk: Tk,
    line: usize,
    col: usize,
    raw: String,
}

fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut line, mut col) = (1usize, 1usize);
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\n' {
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if chars[i].is_whitespace() {
            i += 1;
            col += 1;
            continue;
        }
        let start = i;
        let tk = match lex_token(&chars, &mut i, line, col) {
            Ok(tk) => tk,
            Err(bad) => return bad_token(out, bad, line, col),
        };
        out.push(Token {
            tk,
            line,
            col,
            raw: chars[start..i].iter().collect(),
        });
        col += i - start;
    }
    out.push(Token {
        tk: Tk::Eof,
        line,
        col,
        raw: String::new(),
    });
    out
}

/// Lexes the token that starts at `chars[*i]` (not white space) at `line`, `col`, and moves
/// `*i` past it. `Err` holds the [`Tk::Bad`] that ends lexing.
fn lex_token(chars: &[char], i: &mut usize, line: usize, col: usize) -> Result<Tk, Tk> {
    let start = *i;
    let c = chars[start];
    *i += 1;
    Ok(match c {
        '*' => Tk::Star,
        '(' => Tk::LParen,
        ')' => Tk::RParen,
        ',' => Tk::Comma,
        '=' => Tk::Eq,
        '<' | '>' if chars.get(*i) == Some(&'=') => {
            *i += 1;
            if c == '<' { Tk::Le } else { Tk::Ge }
        }
        '<' => Tk::Lt,
        '>' => Tk::Gt,
        '\'' => lex_string(chars, i, line, col)?,
        c if c.is_ascii_digit() || c == '-' => {
            if c == '-' && !chars.get(*i).is_some_and(char::is_ascii_digit) {
                return Err(lexical(line, col, c, ""));
            }
            skip_while(chars, i, |c| c.is_ascii_digit() || c == '.');
            Tk::Num(chars[start..*i].iter().collect())
        }
        c if c.is_alphabetic() || c == '_' => {
            skip_while(chars, i, |c| c.is_alphanumeric() || c == '_' || c == '.');
            Tk::Word(chars[start..*i].iter().collect())
        }
        other => return Err(lexical(line, col, other, "")),
    })
}

/// The rest of a quoted string whose opening `'` is at `chars[*i - 1]` (a backslash escapes
/// the next character); an unclosed string is a lexical error at its end.
fn lex_string(chars: &[char], i: &mut usize, line: usize, col: usize) -> Result<Tk, Tk> {
    let start = *i - 1;
    let mut s = String::new();
    loop {
        match chars.get(*i) {
            None => {
                let after: String = chars[start..].iter().collect();
                return Err(Tk::Bad(format!(
                    "QueryParserError: Invalid content. Lexical error at line {line}, \
                     column {}.  Encountered: <EOF> after : \"{after}\"",
                    col + (*i - start)
                )));
            }
            Some('\'') => {
                *i += 1;
                return Ok(Tk::Str(s));
            }
            Some('\\') => match chars.get(*i + 1) {
                Some(&n) => {
                    s.push(n);
                    *i += 2;
                }
                None => *i += 1,
            },
            Some(&n) => {
                s.push(n);
                *i += 1;
            }
        }
    }
}

/// Moves `*i` past the characters that satisfy `keep`.
fn skip_while(chars: &[char], i: &mut usize, keep: impl Fn(char) -> bool) {
    while chars.get(*i).is_some_and(|&c| keep(c)) {
        *i += 1;
    }
}

/// Intuit's lexical error for character `c` at `line`, `col`.
fn lexical(line: usize, col: usize, c: char, after: &str) -> Tk {
    Tk::Bad(format!(
        "QueryParserError: Invalid content. Lexical error at line {line}, column {col}.  \
         Encountered: \"{c}\" ({}), after : \"{after}\"",
        u32::from(c)
    ))
}

fn bad_token(mut out: Vec<Token>, tk: Tk, line: usize, col: usize) -> Vec<Token> {
    out.push(Token {
        tk,
        line,
        col,
        raw: String::new(),
    });
    out
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error(&self, t: &Token) -> QueryError {
        let what = match &t.tk {
            Tk::Bad(detail) => return QueryError::Parse(detail.clone()),
            Tk::Eof => {
                return QueryError::Parse(format!(
                    "QueryParserError: Encountered \"<EOF>\" at line {}, column {}.",
                    t.line, t.col
                ));
            }
            Tk::Word(w) if is_keyword(w) => format!("\"{}\"", w.to_ascii_lowercase()),
            Tk::Word(_) => "<IDENTIFIER>".to_owned(),
            Tk::Str(_) => "<STRING>".to_owned(),
            Tk::Num(_) => "<INTEGER>".to_owned(),
            _ => format!("\"{}\"", t.raw),
        };
        QueryError::Parse(format!(
            "QueryParserError: Encountered \" {what} \"{} \"\" at line {}, column {}.",
            t.raw, t.line, t.col
        ))
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tk, Tk::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    /// Consumes keyword `kw` when it comes next.
    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.is_kw(kw);
        if found {
            self.next();
        }
        found
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), QueryError> {
        if self.is_kw(kw) {
            self.next();
            Ok(())
        } else {
            Err(self.error(self.peek()))
        }
    }

    fn expect(&mut self, tk: &Tk) -> Result<(), QueryError> {
        if &self.peek().tk == tk {
            self.next();
            Ok(())
        } else {
            Err(self.error(self.peek()))
        }
    }

    fn word(&mut self) -> Result<String, QueryError> {
        match &self.peek().tk {
            Tk::Word(w) if !is_keyword(w) => {
                let w = w.clone();
                self.next();
                Ok(w)
            }
            _ => Err(self.error(self.peek())),
        }
    }

    fn integer(&mut self) -> Result<u64, QueryError> {
        let t = self.next();
        match &t.tk {
            Tk::Num(n) => n.parse::<u64>().map_err(|_| self.error(&t)),
            _ => Err(self.error(&t)),
        }
    }

    fn value(&mut self) -> Result<Value, QueryError> {
        let t = self.next();
        match t.tk {
            Tk::Str(s) => Ok(Value::Str(s)),
            Tk::Num(n) => Ok(Value::Number(n)),
            Tk::Word(w) if w.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Tk::Word(w) if w.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            Tk::Word(w) if !is_keyword(&w) => Ok(Value::Word(w)),
            _ => Err(self.error(&t)),
        }
    }

    /// `COUNT(*)` (→ `true`), or `*`, `*, Sku` (python-quickbooks) or a property list: all
    /// properties come back anyway.
    fn select_list(&mut self) -> Result<bool, QueryError> {
        let count = matches!(&self.peek().tk, Tk::Word(w) if w.eq_ignore_ascii_case("count"))
            && self
                .toks
                .get(self.pos + 1)
                .is_some_and(|t| t.tk == Tk::LParen);
        if count {
            self.next();
            self.expect(&Tk::LParen)?;
            self.expect(&Tk::Star)?;
            self.expect(&Tk::RParen)?;
            return Ok(true);
        }
        if self.peek().tk == Tk::Star {
            self.next();
        } else {
            self.word()?;
        }
        while self.peek().tk == Tk::Comma {
            self.next();
            self.word()?;
        }
        Ok(false)
    }

    /// `WHERE c AND c …` (no conditions without `WHERE`).
    fn where_clause(&mut self) -> Result<Vec<Condition>, QueryError> {
        let mut conditions = Vec::new();
        if self.eat_kw("where") {
            conditions.push(self.condition()?);
            while self.eat_kw("and") {
                conditions.push(self.condition()?);
            }
        }
        Ok(conditions)
    }

    /// `ORDERBY` or `ORDER BY`, then `property [ASC | DESC], …`.
    fn order_by_clause(&mut self) -> Result<Vec<OrderBy>, QueryError> {
        let mut order_by = Vec::new();
        if !self.eat_kw("orderby") {
            if !self.eat_kw("order") {
                return Ok(order_by);
            }
            self.expect_kw("by")?;
        }
        loop {
            let property = self.word()?;
            let descending = self.eat_kw("desc");
            if !descending {
                self.eat_kw("asc");
            }
            order_by.push(OrderBy {
                property,
                descending,
            });
            if self.peek().tk != Tk::Comma {
                return Ok(order_by);
            }
            self.next();
        }
    }

    /// `STARTPOSITION n` and `MAXRESULTS n`, each at most once, in either order.
    fn paging(&mut self) -> Result<(Option<u64>, Option<u64>), QueryError> {
        let (mut start_position, mut max_results) = (None, None);
        loop {
            if start_position.is_none() && self.eat_kw("startposition") {
                start_position = Some(self.integer()?);
            } else if max_results.is_none() && self.eat_kw("maxresults") {
                max_results = Some(self.integer()?);
            } else {
                return Ok((start_position, max_results));
            }
        }
    }

    fn condition(&mut self) -> Result<Condition, QueryError> {
        let property = self.word()?;
        let t = self.next();
        let op = match &t.tk {
            Tk::Eq => Op::Eq,
            Tk::Lt => Op::Lt,
            Tk::Gt => Op::Gt,
            Tk::Le => Op::Le,
            Tk::Ge => Op::Ge,
            Tk::Word(w) if w.eq_ignore_ascii_case("in") => Op::In,
            Tk::Word(w) if w.eq_ignore_ascii_case("like") => Op::Like,
            _ => return Err(self.error(&t)),
        };
        let value = if op == Op::In {
            self.expect(&Tk::LParen)?;
            let mut items = vec![self.value()?];
            while self.peek().tk == Tk::Comma {
                self.next();
                items.push(self.value()?);
            }
            self.expect(&Tk::RParen)?;
            Value::List(items)
        } else {
            self.value()?
        };
        Ok(Condition {
            property,
            op,
            value,
        })
    }
}

const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "and",
    "or",
    "in",
    "like",
    "order",
    "orderby",
    "by",
    "asc",
    "desc",
    "startposition",
    "maxresults",
];

fn is_keyword(w: &str) -> bool {
    KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k))
}

/// Parses a query statement.
///
/// Returns [`QueryError::Parse`] for syntax errors and [`QueryError::Validation`] for a
/// `MAXRESULTS` above [`MAX_RESULTS_LIMIT`]. Entity and property names are checked later.
pub fn parse_query(text: &str) -> Result<Query, QueryError> {
    if text.trim().is_empty() {
        return Err(QueryError::Parse(
            "QueryParserError: The query provided was empty".to_owned(),
        ));
    }
    let mut p = Parser {
        toks: lex(text),
        pos: 0,
    };
    p.expect_kw("select")?;
    let count = p.select_list()?;
    p.expect_kw("from")?;
    let entity = p.word()?;
    let conditions = p.where_clause()?;
    let order_by = p.order_by_clause()?;
    let (start_position, max_results) = p.paging()?;
    if p.peek().tk != Tk::Eof {
        return Err(p.error(p.peek()));
    }
    if let Some(m) = max_results
        && m > MAX_RESULTS_LIMIT
    {
        return Err(QueryError::validation(format_args!(
            "value {m} is too large. Max allowed value is {MAX_RESULTS_LIMIT}"
        )));
    }
    Ok(Query {
        count,
        entity,
        conditions,
        order_by,
        start_position,
        max_results,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_full_query() {
        let q = parse_query(
            "select * from Customer where Metadata.LastUpdatedTime >= '2024-01-01T00:00:00Z' \
             AND Active IN (true, false) AND DisplayName LIKE 'Amy\\'s%' \
             order by MetaData.LastUpdatedTime asc, Id DESC MAXRESULTS 1000 STARTPOSITION 1",
        )
        .unwrap();
        assert!(!q.count);
        assert_eq!(q.entity, "Customer");
        assert_eq!(q.conditions.len(), 3);
        assert_eq!(q.conditions[1].op, Op::In);
        assert_eq!(
            q.conditions[1].value,
            Value::List(vec![Value::Bool(true), Value::Bool(false)])
        );
        assert_eq!(q.conditions[2].value, Value::Str("Amy's%".to_owned()));
        assert_eq!(q.order_by.len(), 2);
        assert!(q.order_by[1].descending);
        assert_eq!((q.start_position, q.max_results), (Some(1), Some(1000)));
    }

    #[test]
    fn count_and_projection_forms() {
        assert!(parse_query("SELECT COUNT(*) FROM Customer").unwrap().count);
        assert!(
            parse_query("select count ( * ) from Invoice")
                .unwrap()
                .count
        );
        assert!(!parse_query("SELECT *, Sku FROM Item").unwrap().count);
    }

    #[test]
    fn errors_carry_intuit_codes() {
        let e = parse_query("SELECT * FROM Customer MAXRESULTS 1500").unwrap_err();
        assert_eq!(e.code(), "4001");
        assert_eq!(
            e.detail(),
            "QueryValidationError: value 1500 is too large. Max allowed value is 1000"
        );
        let e =
            parse_query("SELECT * FROM Vendor WHERE DisplayName = 'Cutlery 'R Us'").unwrap_err();
        assert_eq!(e.code(), "4000");
        assert_eq!(e.message(), "Error parsing query");
        assert!(
            e.detail()
                .starts_with("QueryParserError: Encountered \" <IDENTIFIER> \"R "),
            "{e}"
        );
        let e = parse_query("SELECT * FROM Account WHERE Name LIKE %x").unwrap_err();
        assert!(
            e.detail().contains("Lexical error at line 1, column 39"),
            "{e}"
        );
        assert_eq!(parse_query("  ").unwrap_err().code(), "4000");
    }

    proptest! {
        #[test]
        fn escaped_literals_round_trip(s in any::<String>()) {
            let q = parse_query(&format!("SELECT * FROM Customer WHERE DisplayName = {}", escape_literal(&s))).unwrap();
            prop_assert_eq!(&q.conditions[0].value, &Value::Str(s));
        }
    }
}
