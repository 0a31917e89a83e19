//! Shell word expansion as buildkit's frontend/dockerfile/shell does it: quotes, escapes,
//! `$VAR` and `${VAR:-x}` forms, glob trims.

use super::*;

/// Expansion errors with buildkit's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("unexpected end of statement while looking for matching {0}")]
    UnexpectedEnd(String),
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${X?message}` / `${X:?message}` on an unset (or empty) variable.
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern { pattern: String, reason: String },
    #[error("invalid escape '\\{0}'")]
    InvalidEscape(char),
    /// The word being expanded, around any of the above.
    #[error("failed to process {}: {source}", go_quote(word))]
    Process {
        word: String,
        source: Box<ShellError>,
    },
}

type ShellResult<T> = Result<T, ShellError>;

/// `Lex.ProcessWord`: quote removal, escapes and `$VAR` expansion into one string.
pub(crate) fn process_word(
    word: &str,
    env: &HashMap<String, String>,
    escape: char,
) -> ShellResult<String> {
    Lexer::new(word, env, escape).run().map(|r| r.0)
}

/// `Lex.ProcessWords`: the same, split into words (EXPOSE).
pub(crate) fn process_words(
    word: &str,
    env: &HashMap<String, String>,
    escape: char,
) -> ShellResult<Vec<String>> {
    Lexer::new(word, env, escape).run().map(|r| r.1)
}

#[derive(Default)]
pub(crate) struct Words {
    pub(crate) buf: String,
    pub(crate) words: Vec<String>,
    pub(crate) in_word: bool,
}

impl Words {
    pub(crate) fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    pub(crate) fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }
    pub(crate) fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    pub(crate) fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    pub(crate) fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

pub(crate) struct Lexer<'a> {
    pub(crate) src: &'a str,
    pub(crate) chars: Vec<char>,
    pub(crate) pos: usize,
    pub(crate) env: &'a HashMap<String, String>,
    pub(crate) escape: char,
    pub(crate) raw_escapes: bool,
}

/// Go's `string(rune(-1))` when a scanner returns EOF where a character was expected.
pub(crate) const EOF_CHAR: char = '\u{FFFD}';

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str, env: &'a HashMap<String, String>, escape: char) -> Self {
        Lexer {
            src,
            chars: src.chars().collect(),
            pos: 0,
            env,
            escape,
            raw_escapes: false,
        }
    }

    pub(crate) fn run(mut self) -> ShellResult<(String, Vec<String>)> {
        self.stop_on(None, false).map_err(|e| ShellError::Process {
            word: self.src.to_string(),
            source: Box::new(e),
        })
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(crate) fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    pub(crate) fn stop_on(
        &mut self,
        stop: Option<char>,
        raw: bool,
    ) -> ShellResult<(String, Vec<String>)> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw);
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    pub(crate) fn stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> ShellResult<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let t = self.dollar()?;
                    result.push_str(&t);
                    words.add_string(&t);
                }
                '\'' | '"' | '<' => {
                    let t = match ch {
                        '\'' => self.single_quote()?,
                        '"' => self.double_quote()?,
                        _ => self.possible_heredoc(),
                    };
                    result.push_str(&t);
                    words.add_raw_string(&t);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        let Some(c) = self.next() else { break };
                        words.add_raw_char(c);
                        result.push(c);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(s) = stop {
            return Err(ShellError::UnexpectedEnd(s.to_string()));
        }
        Ok((result, words.finish()))
    }

    pub(crate) fn single_quote(&mut self) -> ShellResult<String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(ShellError::UnexpectedEnd("single-quote".into()));
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    pub(crate) fn double_quote(&mut self) -> ShellResult<String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(ShellError::UnexpectedEnd("double-quote".into()));
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(_) => {
                    let mut ch = self.next().unwrap_or(EOF_CHAR);
                    if ch == self.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = c;
                                self.next();
                            }
                            _ => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    pub(crate) fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.next();
        }
        out
    }

    pub(crate) fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(d) = self.peek().filter(|c| is_go_digit(*c)) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || is_go_digit(ch) || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    pub(crate) fn get_env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    pub(crate) fn dollar(&mut self) -> ShellResult<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.get_env(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err(ShellError::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellError::BadSubstitution),
            _ => {}
        }
        let name = self.name();
        let mut ch = self.next().unwrap_or(EOF_CHAR);
        let mut chs = ch.to_string();
        match ch {
            '}' => Ok(self.get_env(&name).unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                if null_is_unset {
                    ch = self.next().unwrap_or(EOF_CHAR);
                    chs.push(ch);
                }
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(ShellError::UnsupportedModifier(chs));
                }
                let word = match self.stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            ShellError::MissingBrace
                        } else {
                            e
                        });
                    }
                };
                let value = self.get_env(&name);
                let unset =
                    |v: &Option<String>| v.is_none() || (null_is_unset && v.as_deref() == Some(""));
                match ch {
                    '-' => Ok(if unset(&value) {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset(&value) { String::new() } else { word }),
                    '?' => match value {
                        None => Err(ShellError::Required {
                            name,
                            message: if word.is_empty() {
                                "is not allowed to be unset".into()
                            } else {
                                word
                            },
                        }),
                        Some(v) if null_is_unset && v.is_empty() => Err(ShellError::Required {
                            name,
                            message: if word.is_empty() {
                                "is not allowed to be empty".into()
                            } else {
                                word
                            },
                        }),
                        Some(v) => Ok(v),
                    },
                    '%' | '#' => {
                        let (greedy, pat) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let value = value.unwrap_or_default();
                        if ch == '%' {
                            trim_suffix(&pat, &value, greedy)
                        } else {
                            trim_prefix(&pat, &value, greedy)
                        }
                    }
                    _ => Err(ShellError::UnsupportedModifier(chs)),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pattern = match self.stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            ShellError::MissingSlash
                        } else {
                            e
                        });
                    }
                };
                let replacement = match self.stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            ShellError::MissingBrace
                        } else {
                            e
                        });
                    }
                };
                let value = self.get_env(&name).unwrap_or_default();
                let toks = glob_tokens(&pattern).map_err(|e| ShellError::InvalidPattern {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })?;
                Ok(replace_glob(&toks, &value, &replacement, all))
            }
            _ => Err(ShellError::UnsupportedModifier(chs)),
        }
    }
}

pub(crate) fn is_go_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Tok {
    Star,
    Any,
    Lit(char),
}

/// `convertShellPatternToRegex` as tokens: `*`, `?`, literals; `\` escapes only `*?\`.
pub(crate) fn glob_tokens(pattern: &str) -> ShellResult<Vec<Tok>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            '\\' => {
                if matches!(chars.get(i), Some('}' | '/')) {
                    continue;
                }
                let t = chars.get(i).copied().unwrap_or(EOF_CHAR);
                i += 1;
                if !matches!(t, '*' | '?' | '\\') {
                    return Err(ShellError::InvalidEscape(t));
                }
                toks.push(Tok::Lit(t));
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// End positions where `toks` can match `text[start..]` (`*`/`?` do not cross `\n`, like `.`).
pub(crate) fn glob_ends(toks: &[Tok], text: &[char], start: usize) -> Vec<usize> {
    let n = text.len();
    let mut cur = vec![false; n + 1];
    cur[start] = true;
    for t in toks {
        let mut next = vec![false; n + 1];
        for p in (0..=n).filter(|&p| cur[p]) {
            match t {
                Tok::Lit(c) => {
                    if p < n && text[p] == *c {
                        next[p + 1] = true;
                    }
                }
                Tok::Any => {
                    if p < n && text[p] != '\n' {
                        next[p + 1] = true;
                    }
                }
                Tok::Star => {
                    let mut q = p;
                    loop {
                        next[q] = true;
                        if q == n || text[q] == '\n' {
                            break;
                        }
                        q += 1;
                    }
                }
            }
        }
        cur = next;
    }
    (0..=n).filter(|&p| cur[p]).collect()
}

pub(crate) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> ShellResult<String> {
    let toks = glob_tokens(pattern).map_err(|e| ShellError::InvalidPattern {
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })?;
    let text: Vec<char> = value.chars().collect();
    let ends = glob_ends(&toks, &text, 0);
    let end = if greedy { ends.last() } else { ends.first() };
    Ok(match end {
        Some(&e) => text[e..].iter().collect(),
        None => value.to_string(),
    })
}

/// `reversePattern`: reverse, keeping `\x` pairs in order.
pub(crate) fn reverse_pattern(p: &str) -> String {
    let r: Vec<char> = p.chars().collect();
    let last = r.len().saturating_sub(1);
    let mut out = vec!['\0'; r.len()];
    let mut i = 0;
    while i < r.len() {
        let oi = last - i;
        if r[i] == '\\' && i != last {
            out[oi - 1] = r[i];
            out[oi] = r[i + 1];
            i += 2;
        } else {
            out[oi] = r[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

pub(crate) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> ShellResult<String> {
    let rev: String = value.chars().rev().collect();
    let out = trim_prefix(&reverse_pattern(pattern), &rev, greedy).map_err(|_| {
        ShellError::InvalidPattern {
            pattern: reverse_pattern(pattern),
            reason: "invalid escape".into(),
        }
    })?;
    Ok(out.chars().rev().collect())
}

/// `${X/pat/rep}` / `${X//pat/rep}`: leftmost-longest matches, Go `ReplaceAllString` stepping.
pub(crate) fn replace_glob(toks: &[Tok], value: &str, rep: &str, all: bool) -> String {
    let text: Vec<char> = value.chars().collect();
    let find = |from: usize| {
        (from..=text.len()).find_map(|s| glob_ends(toks, &text, s).last().map(|&e| (s, e)))
    };
    if !all {
        return match find(0) {
            Some((s, e)) => text[..s]
                .iter()
                .chain(rep.chars().collect::<Vec<_>>().iter())
                .chain(text[e..].iter())
                .collect(),
            None => value.to_string(),
        };
    }
    let mut out = String::new();
    let (mut search, mut last_end) = (0, 0);
    while search <= text.len() {
        let Some((s, e)) = find(search) else { break };
        out.extend(&text[last_end..s]);
        if e > last_end || s == 0 {
            out.push_str(rep);
        }
        last_end = e;
        search = if search + 1 > e { search + 1 } else { e };
    }
    if last_end <= text.len() {
        out.extend(&text[last_end..]);
    }
    out
}
