//! A parser for the subset of CEL that CRD validation rules use: literals, identifiers, field
//! selection, `has()`, calls, indexing, list and map literals, every operator, and the macros
//! `all`, `exists`, `exists_one`, `map` and `filter`. It exists only so that the cost estimator
//! in the parent module can walk a rule the way cel-go's checker does.

/// A parse failure, with the byte offset where it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: {message}")]
pub struct ParseError {
    /// Byte offset into the expression.
    pub offset: usize,
    /// What went wrong.
    pub message: String,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `true`, `false`.
    Bool(bool),
    /// An int or uint literal.
    Int(i128),
    /// A double literal.
    Double(f64),
    /// A string literal; its length in characters is what costs count.
    String(String),
    /// A bytes literal (`b'...'`); its length in bytes.
    Bytes(usize),
    /// `null`.
    Null,
}

/// The comprehension macros CEL expands into loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Macro {
    /// `list.all(x, p)`.
    All,
    /// `list.exists(x, p)`.
    Exists,
    /// `list.exists_one(x, p)`.
    ExistsOne,
    /// `list.map(x, f)`.
    Map,
    /// `list.filter(x, p)`.
    Filter,
}

/// A parsed expression. Operators are calls named as in cel-go (`_==_`, `!_`, `_?_:_`, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Literal(Literal),
    /// A variable: `self`, `oldSelf` or a macro's iteration variable.
    Ident(String),
    /// `operand.field`.
    Select {
        /// The object or map.
        operand: Box<Expr>,
        /// The field.
        field: String,
    },
    /// `has(operand.field)`.
    Has {
        /// The object or map.
        operand: Box<Expr>,
        /// The field tested.
        field: String,
    },
    /// A function or operator call; `target` is set for member calls (`s.startsWith(x)`).
    Call {
        /// Function name.
        function: String,
        /// Receiver of a member call.
        target: Option<Box<Expr>>,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `{k: v}`.
    Map(Vec<(Expr, Expr)>),
    /// `range.macro(var, body)`.
    Comprehension {
        /// Which macro.
        kind: Macro,
        /// The list or map iterated.
        range: Box<Expr>,
        /// The iteration variable.
        var: String,
        /// The predicate or transform.
        body: Box<Expr>,
    },
}

/// Parses one CEL expression.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    let tokens = lex(source)?;
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser.expr()?;
    match parser.peek() {
        Token::End => Ok(expr),
        other => Err(parser.error(format!("unexpected {other:?} after the expression"))),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Literal(Literal),
    Punct(&'static str),
    End,
}

// Longest first, so that `==` is not read as `=` `=`.
const PUNCTUATION: [&str; 24] = [
    "==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", "{", "}", ".", ",", ":", "?", "!", "-",
    "+", "*", "/", "%", "<", ">",
];

fn lex(source: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if source[i..].starts_with("//") {
            i = source[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        let start = i;
        let prefix_len = string_prefix_len(&source[i..]);
        if let Some(prefix_len) = prefix_len {
            let prefix = &source[i..i + prefix_len];
            let raw = prefix.contains(['r', 'R']);
            let is_bytes = prefix.contains(['b', 'B']);
            let (text, end) = lex_string(source, i + prefix_len, raw)?;
            let literal = if is_bytes {
                Literal::Bytes(text.len())
            } else {
                Literal::String(text)
            };
            out.push((start, Token::Literal(literal)));
            i = end;
            continue;
        }
        if c.is_ascii_digit() {
            let (literal, end) = lex_number(source, i)?;
            out.push((start, Token::Literal(literal)));
            i = end;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &source[start..i];
            let token = match word {
                "true" => Token::Literal(Literal::Bool(true)),
                "false" => Token::Literal(Literal::Bool(false)),
                "null" => Token::Literal(Literal::Null),
                "in" => Token::Punct("in"),
                _ => Token::Ident(word.to_owned()),
            };
            out.push((start, token));
            continue;
        }
        match PUNCTUATION.iter().find(|p| source[i..].starts_with(**p)) {
            Some(p) => {
                out.push((start, Token::Punct(p)));
                i += p.len();
            }
            None => {
                return Err(ParseError {
                    offset: i,
                    message: format!("unexpected character {:?}", &source[i..].chars().next()),
                });
            }
        }
    }
    out.push((source.len(), Token::End));
    Ok(out)
}

/// Length of a string-literal prefix (`'`, `r"`, `b'`, `rb'`, ...) at the start of `s`, if any.
fn string_prefix_len(s: &str) -> Option<usize> {
    let letters = s
        .bytes()
        .take_while(|b| matches!(b, b'r' | b'R' | b'b' | b'B'))
        .count();
    (letters <= 2 && matches!(s.as_bytes().get(letters), Some(b'\'' | b'"'))).then_some(letters)
}

/// Reads a quoted string starting at its opening quote; returns its text and the offset after it.
fn lex_string(source: &str, open: usize, raw: bool) -> Result<(String, usize), ParseError> {
    let quote = &source[open..open + 1];
    let triple = quote.repeat(3);
    let (delimiter, body_start) = if source[open..].starts_with(&triple) {
        (triple.as_str(), open + 3)
    } else {
        (quote, open + 1)
    };
    let mut text = String::new();
    let mut chars = source[body_start..].char_indices();
    while let Some((offset, c)) = chars.next() {
        let at = body_start + offset;
        if source[at..].starts_with(delimiter) {
            return Ok((text, at + delimiter.len()));
        }
        if c == '\\' && !raw {
            // The cost model needs lengths, not values: an escape stands for one character.
            match chars.next() {
                Some((_, 'x' | 'X')) => skip(&mut chars, 2),
                Some((_, 'u')) => skip(&mut chars, 4),
                Some((_, 'U')) => skip(&mut chars, 8),
                Some((_, d)) if d.is_digit(8) => skip(&mut chars, 2),
                Some(_) => {}
                None => break,
            }
            text.push('?');
        } else {
            text.push(c);
        }
    }
    Err(ParseError {
        offset: open,
        message: "unterminated string literal".to_owned(),
    })
}

fn skip(chars: &mut std::str::CharIndices<'_>, n: usize) {
    for _ in 0..n {
        chars.next();
    }
}

fn lex_number(source: &str, start: usize) -> Result<(Literal, usize), ParseError> {
    let bytes = source.as_bytes();
    let error = |message: &str| ParseError {
        offset: start,
        message: message.to_owned(),
    };
    if source[start..].starts_with("0x") || source[start..].starts_with("0X") {
        let mut i = start + 2;
        while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
            i += 1;
        }
        let value = i128::from_str_radix(&source[start + 2..i], 16)
            .map_err(|_| error("bad hex literal"))?;
        if i < bytes.len() && matches!(bytes[i], b'u' | b'U') {
            i += 1;
        }
        return Ok((Literal::Int(value), i));
    }
    let mut i = start;
    let mut double = false;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
        double = true;
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        double = true;
        i += 1;
        if i < bytes.len() && matches!(bytes[i], b'+' | b'-') {
            i += 1;
        }
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
    let text = &source[start..i];
    if double {
        let value = text.parse().map_err(|_| error("bad double literal"))?;
        return Ok((Literal::Double(value), i));
    }
    let value = text.parse().map_err(|_| error("bad int literal"))?;
    if i < bytes.len() && matches!(bytes[i], b'u' | b'U') {
        i += 1;
    }
    Ok((Literal::Int(value), i))
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
}

fn call(function: &str, args: Vec<Expr>) -> Expr {
    Expr::Call {
        function: function.to_owned(),
        target: None,
        args,
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos].1
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.pos].1.clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn error(&self, message: String) -> ParseError {
        ParseError {
            offset: self.tokens[self.pos].0,
            message,
        }
    }

    fn eat(&mut self, punct: &str) -> bool {
        if matches!(self.peek(), Token::Punct(p) if *p == punct) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, punct: &str) -> Result<(), ParseError> {
        if self.eat(punct) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{punct}`, found {:?}", self.peek())))
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let condition = self.or()?;
        if !self.eat("?") {
            return Ok(condition);
        }
        let if_true = self.or()?;
        self.expect(":")?;
        let if_false = self.expr()?;
        Ok(call("_?_:_", vec![condition, if_true, if_false]))
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.and()?;
        while self.eat("||") {
            lhs = call("_||_", vec![lhs, self.and()?]);
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.relation()?;
        while self.eat("&&") {
            lhs = call("_&&_", vec![lhs, self.relation()?]);
        }
        Ok(lhs)
    }

    fn binary_loop(
        &mut self,
        operators: &[(&str, &str)],
        operand: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let mut lhs = operand(self)?;
        'outer: loop {
            for (punct, function) in operators {
                if self.eat(punct) {
                    lhs = call(function, vec![lhs, operand(self)?]);
                    continue 'outer;
                }
            }
            return Ok(lhs);
        }
    }

    fn relation(&mut self) -> Result<Expr, ParseError> {
        const OPS: [(&str, &str); 7] = [
            ("==", "_==_"),
            ("!=", "_!=_"),
            ("<=", "_<=_"),
            (">=", "_>=_"),
            ("<", "_<_"),
            (">", "_>_"),
            ("in", "@in"),
        ];
        self.binary_loop(&OPS, Self::addition)
    }

    fn addition(&mut self) -> Result<Expr, ParseError> {
        self.binary_loop(&[("+", "_+_"), ("-", "_-_")], Self::multiplication)
    }

    fn multiplication(&mut self) -> Result<Expr, ParseError> {
        const OPS: [(&str, &str); 3] = [("*", "_*_"), ("/", "_/_"), ("%", "_%_")];
        self.binary_loop(&OPS, Self::unary)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat("!") {
            return Ok(call("!_", vec![self.unary()?]));
        }
        if self.eat("-") {
            return Ok(match self.unary()? {
                Expr::Literal(Literal::Int(n)) => Expr::Literal(Literal::Int(-n)),
                Expr::Literal(Literal::Double(n)) => Expr::Literal(Literal::Double(-n)),
                other => call("-_", vec![other]),
            });
        }
        self.member()
    }

    fn member(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.primary()?;
        loop {
            if self.eat(".") {
                let Token::Ident(name) = self.next() else {
                    return Err(self.error("expected a field or method name after `.`".into()));
                };
                if self.eat("(") {
                    let args = self.arguments(")")?;
                    expr = member_call(expr, name, args).map_err(|m| self.error(m))?;
                } else {
                    expr = Expr::Select {
                        operand: Box::new(expr),
                        field: name,
                    };
                }
            } else if self.eat("[") {
                let index = self.expr()?;
                self.expect("]")?;
                expr = call("_[_]", vec![expr, index]);
            } else {
                return Ok(expr);
            }
        }
    }

    fn arguments(&mut self, close: &str) -> Result<Vec<Expr>, ParseError> {
        let mut args = Vec::new();
        if self.eat(close) {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat(close) {
                return Ok(args);
            }
            self.expect(",")?;
            // CEL allows a trailing comma.
            if self.eat(close) {
                return Ok(args);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.next() {
            Token::Literal(literal) => Ok(Expr::Literal(literal)),
            Token::Ident(name) => {
                if !self.eat("(") {
                    return Ok(Expr::Ident(name));
                }
                let mut args = self.arguments(")")?;
                if name == "has" {
                    return match (args.pop(), args.is_empty()) {
                        (Some(Expr::Select { operand, field }), true) => {
                            Ok(Expr::Has { operand, field })
                        }
                        _ => Err(self.error("has() needs one field selection".into())),
                    };
                }
                Ok(call(&name, args))
            }
            Token::Punct("(") => {
                let inner = self.expr()?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Punct("[") => Ok(Expr::List(self.arguments("]")?)),
            Token::Punct("{") => {
                let mut entries = Vec::new();
                if self.eat("}") {
                    return Ok(Expr::Map(entries));
                }
                loop {
                    let key = self.expr()?;
                    self.expect(":")?;
                    entries.push((key, self.expr()?));
                    if self.eat("}") {
                        return Ok(Expr::Map(entries));
                    }
                    self.expect(",")?;
                    if self.eat("}") {
                        return Ok(Expr::Map(entries));
                    }
                }
            }
            Token::Punct(".") => self.primary(),
            other => Err(self.error(format!("unexpected {other:?}"))),
        }
    }
}

/// Builds a member call, expanding the comprehension macros.
fn member_call(target: Expr, name: String, mut args: Vec<Expr>) -> Result<Expr, String> {
    let kind = match name.as_str() {
        "all" => Macro::All,
        "exists" => Macro::Exists,
        "exists_one" => Macro::ExistsOne,
        "map" => Macro::Map,
        "filter" => Macro::Filter,
        _ => {
            return Ok(Expr::Call {
                function: name,
                target: Some(Box::new(target)),
                args,
            });
        }
    };
    if args.len() != 2 {
        return Err(format!(
            "{name}() with {} arguments is not supported",
            args.len()
        ));
    }
    let body = args.pop().expect("two arguments");
    let Some(Expr::Ident(var)) = args.pop() else {
        return Err(format!(
            "{name}(): the first argument must be a variable name"
        ));
    };
    Ok(Expr::Comprehension {
        kind,
        range: Box::new(target),
        var,
        body: Box::new(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(name: &str) -> Expr {
        Expr::Ident(name.to_owned())
    }

    fn select(operand: Expr, field: &str) -> Expr {
        Expr::Select {
            operand: Box::new(operand),
            field: field.to_owned(),
        }
    }

    #[test]
    fn operators_bind_as_in_cel() {
        let parsed = parse("!has(self.a) || self.b == 1 && self.c < 2 + 3 * 4").expect("parse");
        let has = Expr::Has {
            operand: Box::new(ident("self")),
            field: "a".to_owned(),
        };
        let eq = call(
            "_==_",
            vec![select(ident("self"), "b"), Expr::Literal(Literal::Int(1))],
        );
        let product = call(
            "_*_",
            vec![
                Expr::Literal(Literal::Int(3)),
                Expr::Literal(Literal::Int(4)),
            ],
        );
        let sum = call("_+_", vec![Expr::Literal(Literal::Int(2)), product]);
        let lt = call("_<_", vec![select(ident("self"), "c"), sum]);
        let expected = call(
            "_||_",
            vec![call("!_", vec![has]), call("_&&_", vec![eq, lt])],
        );
        assert_eq!(parsed, expected);
    }

    #[test]
    fn macros_become_comprehensions() {
        let parsed = parse("self.zones.all(z, self.zones.exists_one(y, y == z))").expect("parse");
        let Expr::Comprehension {
            kind: Macro::All,
            var,
            body,
            ..
        } = parsed
        else {
            panic!("not an all(): {parsed:?}");
        };
        assert_eq!(var, "z");
        assert!(matches!(
            *body,
            Expr::Comprehension {
                kind: Macro::ExistsOne,
                ..
            }
        ));
    }

    #[test]
    fn literals_and_member_calls() {
        assert_eq!(
            parse(r#"self.s.startsWith("a\"b") ? 'x' : r'\d'"#).expect("parse"),
            call(
                "_?_:_",
                vec![
                    Expr::Call {
                        function: "startsWith".to_owned(),
                        target: Some(Box::new(select(ident("self"), "s"))),
                        args: vec![Expr::Literal(Literal::String("a?b".to_owned()))],
                    },
                    Expr::Literal(Literal::String("x".to_owned())),
                    Expr::Literal(Literal::String("\\d".to_owned())),
                ]
            )
        );
        assert_eq!(
            parse("[1, -2.5, 0x10u, b'ab', null, {'k': true}]").expect("parse"),
            Expr::List(vec![
                Expr::Literal(Literal::Int(1)),
                Expr::Literal(Literal::Double(-2.5)),
                Expr::Literal(Literal::Int(16)),
                Expr::Literal(Literal::Bytes(2)),
                Expr::Literal(Literal::Null),
                Expr::Map(vec![(
                    Expr::Literal(Literal::String("k".to_owned())),
                    Expr::Literal(Literal::Bool(true))
                )]),
            ])
        );
    }

    #[test]
    fn malformed_rules_are_errors() {
        for bad in [
            "self.",
            "has(self)",
            "a ? b",
            "'open",
            "self.all(1, true)",
            "a $ b",
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
    }
}
