//! SOQL: a lexer and parser for the subset a connector sends, resolved against the
//! schema so unknown objects and fields fail the way a real org fails them
//! (`MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`, with the caret message).
//!
//! Supported: field lists with parent relationships (`Owner.Name`), `COUNT()` and
//! `COUNT(field)`, `WHERE` with `= != <> < <= > >=`, `LIKE`, `IN`/`NOT IN`,
//! `AND`/`OR`/`NOT` and parentheses, `null`/`true`/`false`, string literals with
//! escapes, unquoted datetime and date literals, `TODAY`/`YESTERDAY`/`LAST_N_DAYS:n`,
//! `ORDER BY` with `ASC`/`DESC`/`NULLS FIRST|LAST`, `LIMIT` and `OFFSET`.

mod eval;

pub(crate) use eval::{Cursors, execute, next_page, render_record};

use chrono::{NaiveDate, Utc};

use super::ids;
use super::schema::{FieldDef, FieldType, ObjType, parse_datetime};

/// A query error as the REST API reports it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct SoqlError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str { value: String, raw: String },
    Num(String),
    DateTime(i64),
    Date(NaiveDate),
    Comma,
    Dot,
    Colon,
    LParen,
    RParen,
    Op(&'static str),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn malformed(message: impl Into<String>) -> SoqlError {
    SoqlError {
        code: "MALFORMED_QUERY",
        message: message.into(),
    }
}

/// The caret-style message real orgs give for unknown names.
fn located(text: &str, pos: usize, code: &'static str, detail: String) -> SoqlError {
    let (row, col) = text[..pos.min(text.len())]
        .split('\n')
        .fold((0usize, 0usize), |(r, _), line| {
            (r + 1, line.chars().count())
        });
    let line = text.lines().nth(row.saturating_sub(1)).unwrap_or(text);
    SoqlError {
        code,
        message: format!(
            "\n{line}\n{}^\nERROR at Row:{row}:Column:{}\n{detail}",
            " ".repeat(col),
            col + 1
        ),
    }
}

fn lex(text: &str) -> Result<Vec<Token>, SoqlError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = match c {
            ',' => Some(Tok::Comma),
            '.' => Some(Tok::Dot),
            ':' => Some(Tok::Colon),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            _ => None,
        };
        if let Some(tok) = single {
            out.push(Token { tok, pos });
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).map(|(_, c)| *c);
        let op = match (c, next) {
            ('!', Some('=')) => Some(("!=", 2)),
            ('<', Some('>')) => Some(("!=", 2)),
            ('<', Some('=')) => Some(("<=", 2)),
            ('>', Some('=')) => Some((">=", 2)),
            ('<', _) => Some(("<", 1)),
            ('>', _) => Some((">", 1)),
            ('=', _) => Some(("=", 1)),
            _ => None,
        };
        if let Some((op, len)) = op {
            out.push(Token {
                tok: Tok::Op(op),
                pos,
            });
            i += len;
            continue;
        }
        if c == '\'' || c == '"' {
            let quote = c;
            let mut value = String::new();
            let mut raw = String::new();
            i += 1;
            loop {
                let Some(&(_, c)) = chars.get(i) else {
                    return Err(malformed(format!("unexpected token: '{}'", &text[pos..])));
                };
                if c == quote {
                    i += 1;
                    break;
                }
                if c == '\\' {
                    let Some(&(_, e)) = chars.get(i + 1) else {
                        return Err(malformed("Invalid string literal: trailing backslash"));
                    };
                    let unescaped = match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        '\'' | '"' | '\\' | '%' | '_' => e,
                        other => {
                            return Err(malformed(format!(
                                "Invalid string literal '\\{other}'. Illegal character sequence '\\{other}' in string literal."
                            )));
                        }
                    };
                    value.push(unescaped);
                    raw.push('\\');
                    raw.push(e);
                    i += 2;
                    continue;
                }
                value.push(c);
                raw.push(c);
                i += 1;
            }
            out.push(Token {
                tok: Tok::Str { value, raw },
                pos,
            });
            continue;
        }
        // Words, numbers and unquoted date/datetime literals run to a delimiter.
        let start = i;
        while i < chars.len() {
            let c = chars[i].1;
            if c.is_whitespace()
                || matches!(c, ',' | '(' | ')' | '=' | '!' | '<' | '>' | '\'' | '"')
            {
                break;
            }
            // A colon ends a word (LAST_N_DAYS:7) but belongs to a time (09:15:27).
            if c == ':' && !chars[start].1.is_ascii_digit() {
                break;
            }
            // A dot separates path segments, but belongs to numbers and times.
            if c == '.' && !chars[start].1.is_ascii_digit() && chars[start].1 != '-' {
                break;
            }
            i += 1;
        }
        if i == start {
            return Err(malformed(format!("unexpected token: '{c}'")));
        }
        let end = chars.get(i).map_or(text.len(), |(p, _)| *p);
        let word = &text[pos..end];
        let tok = if word.len() >= 10
            && word.as_bytes()[4] == b'-'
            && word.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        {
            if word.len() == 10 {
                Tok::Date(NaiveDate::parse_from_str(word, "%Y-%m-%d").map_err(|_| {
                    malformed(format!(
                        "line 1:{pos} no viable alternative at character '{word}'"
                    ))
                })?)
            } else {
                Tok::DateTime(parse_datetime(word).ok_or_else(|| {
                    malformed(format!(
                        "line 1:{pos} no viable alternative at character '{word}'"
                    ))
                })?)
            }
        } else if word.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
            if word.parse::<f64>().is_err() {
                return Err(malformed(format!("unexpected token: '{word}'")));
            }
            Tok::Num(word.to_owned())
        } else {
            Tok::Word(word.to_owned())
        };
        out.push(Token { tok, pos });
    }
    Ok(out)
}

/// Where a selected or filtered value comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldPath {
    Direct {
        idx: usize,
    },
    /// A parent relationship: the lookup field on this object and the field on the
    /// parent. `parent_field` is the canonical name; for the polymorphic `Owner`
    /// (User or Queue) it is a field of the `Name` object.
    Parent {
        lookup: usize,
        relationship: &'static str,
        targets: &'static [ObjType],
        parent_field: String,
        parent_type: FieldType,
    },
}

/// Fields of the polymorphic `Name` object behind `Owner` (User or Queue).
const NAME_FIELDS: &[(&str, FieldType)] = &[
    ("Id", FieldType::Id),
    ("Name", FieldType::String),
    ("Type", FieldType::Picklist),
    ("Email", FieldType::Email),
    ("IsActive", FieldType::Boolean),
    ("Username", FieldType::String),
    ("FirstName", FieldType::String),
    ("LastName", FieldType::String),
];

impl FieldPath {
    pub(crate) fn field_type(&self, obj: ObjType) -> FieldType {
        match self {
            FieldPath::Direct { idx } => obj.fields()[*idx].ty,
            FieldPath::Parent { parent_type, .. } => *parent_type,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal already converted to the compared field's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Null,
    /// Lower-cased text (SOQL text comparison is case-insensitive).
    Text(String),
    /// A canonical 18-character id (compared ignoring case: 18-character ids are
    /// unique that way).
    Id(String),
    Num(f64),
    Bool(bool),
    Secs(i64),
    Date(NaiveDate),
    /// A relative date literal: [start, end) in epoch seconds.
    Range(i64, i64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp {
        path: FieldPath,
        op: CmpOp,
        lit: Lit,
    },
    In {
        path: FieldPath,
        negated: bool,
        lits: Vec<Lit>,
    },
    Like {
        path: FieldPath,
        /// Lower-cased pattern as raw text (escapes kept).
        pattern: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderItem {
    pub(crate) path: FieldPath,
    pub(crate) descending: bool,
    pub(crate) nulls_first: bool,
}

/// A selected column: its path and the name it is rendered under.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub(crate) path: FieldPath,
    /// Canonical field name (`OwnerId`), or the parent field name for relationships.
    pub(crate) name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Select {
    /// `SELECT COUNT()`: only `totalSize` matters.
    CountOnly,
    /// `SELECT COUNT(field) [alias]`: one AggregateResult row.
    CountField {
        alias: String,
        path: FieldPath,
    },
    Columns(Vec<Column>),
}

/// A parsed, resolved query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub(crate) object: ObjType,
    pub(crate) select: Select,
    pub(crate) filter: Option<Expr>,
    pub(crate) order: Vec<OrderItem>,
    pub(crate) limit: Option<usize>,
    pub(crate) offset: usize,
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    at: usize,
    object: ObjType,
}

fn is_kw(tok: &Tok, kw: &str) -> bool {
    matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

/// Parses and resolves a SOQL statement.
pub(crate) fn parse(text: &str) -> Result<Query, SoqlError> {
    let toks = lex(text)?;
    let mut p = Parser {
        text,
        toks,
        at: 0,
        object: ObjType::Lead,
    };
    p.query()
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.text.len(), |t| t.pos)
    }

    fn unexpected(&self) -> SoqlError {
        match self.toks.get(self.at) {
            Some(t) => {
                let shown = match &t.tok {
                    Tok::Word(w) | Tok::Num(w) => w.clone(),
                    Tok::Str { raw, .. } => format!("'{raw}'"),
                    Tok::Comma => ",".into(),
                    Tok::Dot => ".".into(),
                    Tok::Colon => ":".into(),
                    Tok::LParen => "(".into(),
                    Tok::RParen => ")".into(),
                    Tok::Op(o) => (*o).into(),
                    Tok::DateTime(_) | Tok::Date(_) => self.text[t.pos..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .into(),
                };
                located(
                    self.text,
                    t.pos,
                    "MALFORMED_QUERY",
                    format!("unexpected token: '{shown}'"),
                )
            }
            None => malformed("unexpected end of query"),
        }
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek().is_some_and(|t| is_kw(t, kw)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A dotted name with its position.
    fn path_words(&mut self) -> Result<(Vec<String>, usize), SoqlError> {
        let pos = self.pos();
        let mut words = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Word(w)) => {
                    words.push(w.clone());
                    self.at += 1;
                }
                _ => return Err(self.unexpected()),
            }
            if !self.eat(&Tok::Dot) {
                return Ok((words, pos));
            }
        }
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("SELECT")?;
        enum Raw {
            CountOnly,
            Count(Option<(Vec<String>, usize)>, Option<String>),
            Path(Vec<String>, usize),
        }
        let mut raws = Vec::new();
        loop {
            if self.peek().is_some_and(|t| is_kw(t, "COUNT"))
                && self.toks.get(self.at + 1).map(|t| &t.tok) == Some(&Tok::LParen)
            {
                self.at += 2;
                if self.eat(&Tok::RParen) {
                    raws.push(Raw::CountOnly);
                } else {
                    let path = self.path_words()?;
                    if !self.eat(&Tok::RParen) {
                        return Err(self.unexpected());
                    }
                    let alias = match self.peek() {
                        Some(Tok::Word(w)) if !is_kw(&Tok::Word(w.clone()), "FROM") => {
                            let w = w.clone();
                            self.at += 1;
                            Some(w)
                        }
                        _ => None,
                    };
                    raws.push(Raw::Count(Some(path), alias));
                }
            } else if self
                .peek()
                .is_some_and(|t| is_kw(t, "TYPEOF") || is_kw(t, "FIELDS"))
            {
                return Err(located(
                    self.text,
                    self.pos(),
                    "MALFORMED_QUERY",
                    "TYPEOF and FIELDS() are not supported by this simulator; select fields explicitly".into(),
                ));
            } else if self.eat(&Tok::LParen) {
                return Err(located(
                    self.text,
                    self.pos(),
                    "MALFORMED_QUERY",
                    "child relationship sub-queries are not supported by this simulator".into(),
                ));
            } else {
                let (words, pos) = self.path_words()?;
                raws.push(Raw::Path(words, pos));
            }
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect_kw("FROM")?;
        let from_pos = self.pos();
        let object_name = match self.peek() {
            Some(Tok::Word(w)) => w.clone(),
            _ => return Err(self.unexpected()),
        };
        self.at += 1;
        self.object = ObjType::parse(&object_name).ok_or_else(|| {
            located(
                self.text,
                from_pos,
                "INVALID_TYPE",
                format!(
                    "sObject type '{object_name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
                ),
            )
        })?;
        // An optional alias after the object name is not supported; a keyword follows.
        let select = if raws.len() == 1 && matches!(raws[0], Raw::CountOnly) {
            Select::CountOnly
        } else if raws.iter().any(|r| matches!(r, Raw::CountOnly)) {
            return Err(malformed(
                "COUNT() must be the only element in the SELECT list",
            ));
        } else if raws.iter().any(|r| matches!(r, Raw::Count(..))) {
            if raws.len() != 1 {
                return Err(malformed(
                    "Field must be grouped or aggregated (GROUP BY is not supported by this simulator)",
                ));
            }
            let Some(Raw::Count(Some((words, pos)), alias)) = raws.pop() else {
                return Err(malformed("COUNT needs a field"));
            };
            Select::CountField {
                alias: alias.unwrap_or_else(|| "expr0".to_owned()),
                path: self.resolve(&words, pos)?.0,
            }
        } else {
            let mut columns = Vec::new();
            for raw in raws {
                if let Raw::Path(words, pos) = raw {
                    let (path, name) = self.resolve(&words, pos)?;
                    if !columns.iter().any(|c: &Column| c.path == path) {
                        columns.push(Column { path, name });
                    } else {
                        return Err(located(
                            self.text,
                            pos,
                            "MALFORMED_QUERY",
                            format!("duplicate field selected: {}", words.join(".")),
                        ));
                    }
                }
            }
            Select::Columns(columns)
        };
        let filter = if self.eat_kw("WHERE") {
            Some(self.or_expr()?)
        } else {
            None
        };
        if self
            .peek()
            .is_some_and(|t| is_kw(t, "GROUP") || is_kw(t, "HAVING"))
        {
            return Err(located(
                self.text,
                self.pos(),
                "MALFORMED_QUERY",
                "GROUP BY and HAVING are not supported by this simulator".into(),
            ));
        }
        let mut order = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            loop {
                let (words, pos) = self.path_words()?;
                let path = self.resolve(&words, pos)?.0;
                let descending = if self.eat_kw("DESC") {
                    true
                } else {
                    self.eat_kw("ASC");
                    false
                };
                let mut nulls_first = !descending;
                if self.eat_kw("NULLS") {
                    if self.eat_kw("FIRST") {
                        nulls_first = true;
                    } else {
                        self.expect_kw("LAST")?;
                        nulls_first = false;
                    }
                }
                order.push(OrderItem {
                    path,
                    descending,
                    nulls_first,
                });
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        }
        let mut limit = None;
        let mut offset = 0;
        loop {
            if self.eat_kw("LIMIT") {
                limit = Some(self.count_value()?);
            } else if self.eat_kw("OFFSET") {
                offset = self.count_value()?;
                if offset > 2_000 {
                    return Err(SoqlError {
                        code: "NUMBER_OUTSIDE_VALID_RANGE",
                        message: format!("Maximum SOQL offset allowed is 2000 (got {offset})"),
                    });
                }
            } else {
                break;
            }
        }
        if self.at < self.toks.len() {
            return Err(self.unexpected());
        }
        Ok(Query {
            object: self.object,
            select,
            filter,
            order,
            limit,
            offset,
        })
    }

    fn count_value(&mut self) -> Result<usize, SoqlError> {
        match self.peek() {
            Some(Tok::Num(n)) => {
                let n = n.parse::<usize>().map_err(|_| self.unexpected())?;
                self.at += 1;
                Ok(n)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn no_such_column(&self, pos: usize, name: &str, obj: &str) -> SoqlError {
        located(
            self.text,
            pos,
            "INVALID_FIELD",
            format!(
                "No such column '{name}' on entity '{obj}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
            ),
        )
    }

    /// Resolves `Field`, `Object.Field` (the queried object's own name as prefix) and
    /// `Relationship.Field`.
    fn resolve(&self, words: &[String], pos: usize) -> Result<(FieldPath, String), SoqlError> {
        let obj = self.object;
        let words: &[String] = if words.len() > 1 && words[0].eq_ignore_ascii_case(obj.name()) {
            &words[1..]
        } else {
            words
        };
        match words {
            [field] => {
                let idx = obj
                    .field_index(field)
                    .ok_or_else(|| self.no_such_column(pos, field, obj.name()))?;
                Ok((FieldPath::Direct { idx }, obj.fields()[idx].name.to_owned()))
            }
            [rel, field] => {
                let (lookup, def): (usize, &FieldDef) =
                    obj.relationship(rel).ok_or_else(|| {
                        located(
                            self.text,
                            pos,
                            "INVALID_FIELD",
                            format!(
                                "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
                            ),
                        )
                    })?;
                let (parent_field, parent_type) = if def.reference_to.len() > 1 {
                    NAME_FIELDS
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(field))
                        .map(|(n, t)| ((*n).to_owned(), *t))
                        .ok_or_else(|| self.no_such_column(pos, field, "Name"))?
                } else {
                    let target = def.reference_to[0];
                    let idx = target
                        .field_index(field)
                        .ok_or_else(|| self.no_such_column(pos, field, target.name()))?;
                    let f = &target.fields()[idx];
                    (f.name.to_owned(), f.ty)
                };
                Ok((
                    FieldPath::Parent {
                        lookup,
                        relationship: def.relationship.unwrap_or("Parent"),
                        targets: def.reference_to,
                        parent_field: parent_field.clone(),
                        parent_type,
                    },
                    parent_field,
                ))
            }
            _ => Err(located(
                self.text,
                pos,
                "MALFORMED_QUERY",
                "relationship paths deeper than one level are not supported by this simulator"
                    .into(),
            )),
        }
    }

    fn or_expr(&mut self) -> Result<Expr, SoqlError> {
        let mut parts = vec![self.and_expr()?];
        while self.eat_kw("OR") {
            parts.push(self.and_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, SoqlError> {
        let mut parts = vec![self.unary()?];
        while self.eat_kw("AND") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, SoqlError> {
        if self.eat_kw("NOT") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat(&Tok::LParen) {
            let inner = self.or_expr()?;
            if !self.eat(&Tok::RParen) {
                return Err(self.unexpected());
            }
            return Ok(inner);
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Expr, SoqlError> {
        let (words, pos) = self.path_words()?;
        let (path, name) = self.resolve(&words, pos)?;
        let ty = path.field_type(self.object);
        if self.eat_kw("LIKE") {
            let pattern = match self.peek() {
                Some(Tok::Str { raw, .. }) if ty.is_textual() => raw.to_lowercase(),
                _ => {
                    return Err(located(
                        self.text,
                        self.pos(),
                        "INVALID_QUERY_FILTER_OPERATOR",
                        format!(
                            "invalid operator on field: {name}: LIKE needs a text field and a quoted pattern"
                        ),
                    ));
                }
            };
            self.at += 1;
            return Ok(Expr::Like { path, pattern });
        }
        let negated = if self.peek().is_some_and(|t| is_kw(t, "NOT"))
            && self
                .toks
                .get(self.at + 1)
                .is_some_and(|t| is_kw(&t.tok, "IN"))
        {
            self.at += 1;
            true
        } else {
            false
        };
        if self.eat_kw("IN") {
            if !self.eat(&Tok::LParen) {
                return Err(self.unexpected());
            }
            let mut lits = Vec::new();
            loop {
                if self.peek().is_some_and(|t| is_kw(t, "SELECT")) {
                    return Err(located(
                        self.text,
                        self.pos(),
                        "MALFORMED_QUERY",
                        "semi-join sub-queries are not supported by this simulator".into(),
                    ));
                }
                lits.push(self.literal(ty, &name)?);
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
            if !self.eat(&Tok::RParen) {
                return Err(self.unexpected());
            }
            return Ok(Expr::In {
                path,
                negated,
                lits,
            });
        }
        if negated {
            return Err(self.unexpected());
        }
        let op = match self.peek() {
            Some(Tok::Op(op)) => match *op {
                "=" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            },
            _ => return Err(self.unexpected()),
        };
        self.at += 1;
        let lit = self.literal(ty, &name)?;
        if matches!(lit, Lit::Null) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return Err(located(
                self.text,
                pos,
                "INVALID_QUERY_FILTER_OPERATOR",
                format!("invalid operator on null for field: {name}"),
            ));
        }
        if matches!(lit, Lit::Bool(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return Err(located(
                self.text,
                pos,
                "INVALID_QUERY_FILTER_OPERATOR",
                format!("invalid operator on boolean field: {name}"),
            ));
        }
        Ok(Expr::Cmp { path, op, lit })
    }

    fn type_error(&self, pos: usize, name: &str, ty: FieldType) -> SoqlError {
        let quoted = matches!(
            ty,
            FieldType::DateTime
                | FieldType::Date
                | FieldType::Boolean
                | FieldType::Int
                | FieldType::Currency
        );
        located(
            self.text,
            pos,
            "INVALID_QUERY_FILTER_OPERATOR",
            if quoted {
                format!(
                    "value of filter criterion for field '{name}' must be of type {} and should not be enclosed in quotes",
                    ty.describe_name().replace("datetime", "dateTime")
                )
            } else {
                format!(
                    "value of filter criterion for field '{name}' must be of type {} and should be enclosed in quotes",
                    ty.describe_name()
                )
            },
        )
    }

    /// One literal, converted to the compared field's type.
    fn literal(&mut self, ty: FieldType, name: &str) -> Result<Lit, SoqlError> {
        let pos = self.pos();
        let Some(tok) = self.peek().cloned() else {
            return Err(self.unexpected());
        };
        self.at += 1;
        if is_kw(&tok, "NULL") {
            return Ok(Lit::Null);
        }
        let lit = match (ty, tok) {
            (FieldType::Id | FieldType::Reference, Tok::Str { value, .. }) => {
                match ids::canonical(&value) {
                    Some(id) => Lit::Id(id),
                    // A reference to a non-id string simply matches nothing.
                    None if ty == FieldType::Reference || value.is_empty() => {
                        Lit::Text(value.to_lowercase())
                    }
                    None => {
                        return Err(located(
                            self.text,
                            pos,
                            "INVALID_QUERY_FILTER_OPERATOR",
                            format!("invalid ID field: {value}"),
                        ));
                    }
                }
            }
            (t, Tok::Str { value, .. }) if t.is_textual() => Lit::Text(value.to_lowercase()),
            (FieldType::Boolean, Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            (FieldType::Boolean, Tok::Word(w)) if w.eq_ignore_ascii_case("false") => {
                Lit::Bool(false)
            }
            (FieldType::Int | FieldType::Currency, Tok::Num(n)) => {
                Lit::Num(n.parse().map_err(|_| self.type_error(pos, name, ty))?)
            }
            (FieldType::DateTime, Tok::DateTime(secs)) => Lit::Secs(secs),
            (FieldType::Date, Tok::Date(d)) => Lit::Date(d),
            (FieldType::DateTime | FieldType::Date, Tok::Word(w)) => {
                // Dates compare as midnight UTC of their day, so one range serves both.
                let (start, end) = self.date_literal(&w, pos)?;
                Lit::Range(start, end)
            }
            _ => return Err(self.type_error(pos, name, ty)),
        };
        Ok(lit)
    }

    /// `TODAY`, `YESTERDAY`, `TOMORROW`, `LAST_N_DAYS:n`, `NEXT_N_DAYS:n` as [start, end).
    fn date_literal(&mut self, word: &str, pos: usize) -> Result<(i64, i64), SoqlError> {
        let today = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp();
        let day = 86_400;
        let upper = word.to_ascii_uppercase();
        // `n` comes from the query text: refused when the range leaves i64, never wrapped.
        let out_of_range = || malformed(format!("{upper}: the number of days is out of range"));
        let mut n_days = || -> Result<i64, SoqlError> {
            if !self.eat(&Tok::Colon) {
                return Err(self.unexpected());
            }
            let n = self.count_value()?;
            i64::try_from(n)
                .ok()
                .and_then(|n| n.checked_mul(day))
                .ok_or_else(out_of_range)
        };
        Ok(match upper.as_str() {
            "TODAY" => (today, today + day),
            "YESTERDAY" => (today - day, today),
            "TOMORROW" => (today + day, today + 2 * day),
            "LAST_N_DAYS" => {
                let span = n_days()?;
                let start = today.checked_sub(span).ok_or_else(out_of_range)?;
                (start, today + day)
            }
            "NEXT_N_DAYS" => {
                let span = n_days()?;
                let end = span
                    .checked_add(day)
                    .and_then(|s| today.checked_add(s))
                    .ok_or_else(out_of_range)?;
                (today + day, end)
            }
            _ => {
                return Err(located(
                    self.text,
                    pos,
                    "MALFORMED_QUERY",
                    format!("unexpected token: '{word}'"),
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typical_incremental_query_parses() {
        let q = parse(
            "SELECT Id, OwnerId, Owner.Type, Owner.Name FROM Lead WHERE SystemModstamp >= 2025-03-04T09:15:27Z AND IsDeleted = false ORDER BY SystemModstamp, Id LIMIT 10",
        )
        .expect("parses");
        assert_eq!(q.object, ObjType::Lead);
        assert_eq!(q.order.len(), 2);
        assert_eq!(q.limit, Some(10));
        let Select::Columns(columns) = q.select else {
            panic!("columns expected");
        };
        assert_eq!(columns[2].name, "Type");
    }

    #[test]
    fn relative_date_literals_out_of_range_are_refused_not_wrapped() {
        // Found by the `sim_soql` fuzz target: `n * 86_400` overflowed (a panic in debug
        // builds, a wrapped range in release) and a `usize` above i64::MAX turned negative.
        for query in [
            "SELECT Id FROM Lead WHERE CreatedDate = LAST_N_DAYS:9999999999999999",
            "SELECT Id FROM Lead WHERE CreatedDate > NEXT_N_DAYS:18446744073709551615",
            "SELECT Id FROM Lead WHERE CreatedDate < NEXT_N_DAYS:106751991167300",
        ] {
            let err = parse(query).expect_err(query);
            assert_eq!(err.code, "MALFORMED_QUERY", "{query}");
            assert!(err.message.contains("out of range"), "{query}: {err}");
        }
        parse("SELECT Id FROM Lead WHERE CreatedDate = LAST_N_DAYS:7").expect("a week parses");
        parse("SELECT Id FROM Lead WHERE CreatedDate < NEXT_N_DAYS:30").expect("a month parses");
    }

    #[test]
    fn keywords_and_field_names_are_case_insensitive() {
        let q =
            parse("select id, ownerid from lead where ownerid != null order by id desc nulls last")
                .expect("parses");
        assert!(q.order[0].descending && !q.order[0].nulls_first);
    }

    #[test]
    fn unknown_fields_and_objects_fail_like_a_real_org() {
        let err = parse("SELECT Foo FROM Lead").expect_err("bad field");
        assert_eq!(err.code, "INVALID_FIELD");
        assert!(
            err.message
                .contains("No such column 'Foo' on entity 'Lead'")
        );
        assert!(err.message.contains("Row:1:Column:8"), "{}", err.message);
        assert_eq!(
            parse("SELECT Id FROM Opportunityx")
                .expect_err("bad type")
                .code,
            "INVALID_TYPE"
        );
        assert_eq!(
            parse("SELECT Id FROM Lead WHERE")
                .expect_err("dangling")
                .code,
            "MALFORMED_QUERY"
        );
        assert_eq!(
            parse("SELECT Id Lead").expect_err("no from").code,
            "MALFORMED_QUERY"
        );
    }

    #[test]
    fn quoted_datetimes_are_rejected() {
        let err = parse("SELECT Id FROM Lead WHERE SystemModstamp > '2025-01-01T00:00:00Z'")
            .expect_err("quoted datetime");
        assert_eq!(err.code, "INVALID_QUERY_FILTER_OPERATOR");
    }

    #[test]
    fn string_escapes_and_all_datetime_forms_lex() {
        parse(r"SELECT Id FROM Lead WHERE Company = 'O\'Brien \\ Co' AND SystemModstamp > 2025-03-04T09:15:27.000+0000 AND CreatedDate < 2025-03-04T09:15:27+01:00 AND ConvertedDate = 2025-03-04")
            .expect("parses");
    }

    #[test]
    fn fifteen_character_ids_in_filters_are_canonicalised() {
        let q =
            parse("SELECT Id FROM Account WHERE Id IN ('001xx000003DGb2', '001xx000003DGb2AAG')")
                .expect("parses");
        let Some(Expr::In { lits, .. }) = q.filter else {
            panic!("IN expected");
        };
        assert_eq!(lits[0], lits[1]);
    }
}
