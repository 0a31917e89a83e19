//! The Dockerfile parser of buildkit (frontend/dockerfile/parser): lines, continuations,
//! directives, builder flags, JSON and shell forms.

use super::*;

pub(crate) struct Node {
    pub(crate) cmd: String,
    pub(crate) original: String,
    pub(crate) flags: Vec<String>,
    pub(crate) args: Vec<String>,
    pub(crate) json: bool,
    /// Here-documents of RUN, COPY and ADD, in the order their markers appear.
    pub(crate) heredocs: Vec<Heredoc>,
    /// 1-based line of the instruction, for error texts.
    pub(crate) line: usize,
}

/// One `<<NAME` here-document (buildkit `parser.Heredoc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heredoc {
    pub(crate) name: String,
    /// The body, every line ending in `\n`.
    pub(crate) content: String,
    /// False when the delimiter was quoted: no variable expansion.
    pub(crate) expand: bool,
    /// `<<-`: leading tabs are stripped from the body.
    pub(crate) chomp: bool,
}

/// The here-document markers in an instruction line (buildkit `heredocsFromLine` on the
/// shell words): `<<NAME`, `<<-NAME`, `<<"NAME"`, `<<'NAME'`.
pub(crate) fn heredoc_markers(line: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            i += 1;
            continue;
        }
        if c == '<'
            && bytes.get(i + 1) == Some(&'<')
            && bytes.get(i + 2) != Some(&'<')
            && (i == 0 || bytes[i - 1] != '<')
        {
            let mut j = i + 2;
            let chomp = bytes.get(j) == Some(&'-');
            if chomp {
                j += 1;
            }
            let (q, start) = match bytes.get(j) {
                Some(&c) if c == '\'' || c == '"' => (Some(c), j + 1),
                _ => (None, j),
            };
            let mut k = start;
            while k < bytes.len()
                && (bytes[k].is_alphanumeric()
                    || bytes[k] == '_'
                    || bytes[k] == '-'
                    || bytes[k] == '.')
            {
                k += 1;
            }
            let name: String = bytes[start..k].iter().collect();
            let mut end = k;
            if let Some(q) = q {
                if bytes.get(k) != Some(&q) {
                    i += 2;
                    continue;
                }
                end = k + 1;
            }
            if !name.is_empty() {
                out.push((name, q.is_none(), chomp));
            }
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

pub(crate) struct Directives {
    pub(crate) escape: char,
    pub(crate) done: bool,
    pub(crate) seen: Vec<String>,
}

impl Directives {
    /// `DirectiveParser.ParseLine` + `setEscapeToken`: `# name = value` lines at the very top.
    pub(crate) fn parse_line(&mut self, line: &str) -> Res<bool> {
        if self.done {
            return Ok(false);
        }
        let Some((k, v)) = parse_directive(line) else {
            self.done = true;
            return Ok(false);
        };
        let k = k.to_lowercase();
        if !matches!(k.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(false);
        }
        if self.seen.contains(&k) {
            return err(format!("only one {k} parser directive can be used"));
        }
        self.seen.push(k.clone());
        if k == "escape" {
            match v {
                "`" => self.escape = '`',
                "\\" => self.escape = '\\',
                _ => return err(format!("invalid escape token '{v}' does not match ` or \\")),
            }
        }
        Ok(true)
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
pub(crate) fn parse_directive(line: &str) -> Option<(&str, &str)> {
    let is_s = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let rest = line.strip_prefix('#')?.trim_start_matches(is_s);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let value = rest
        .trim_start_matches(is_s)
        .strip_prefix('=')?
        .trim_matches(is_s);
    (!value.is_empty()).then_some((name, value))
}

pub(crate) fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// `processLine`: drop the newline, maybe leading space, look for a directive, blank comments.
pub(crate) fn process_line(d: &mut Directives, raw: &str, strip_left: bool) -> Res<String> {
    let mut token = raw.trim_end_matches(['\r', '\n']);
    if strip_left {
        token = token.trim_start();
    }
    d.parse_line(token)?;
    Ok(if is_comment(token) {
        String::new()
    } else {
        token.to_string()
    })
}

/// `trimContinuationCharacter`: a trailing unescaped escape token (plus spaces/tabs) continues.
pub(crate) fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before.to_string(), false);
    }
    (line.to_string(), true)
}

/// `parser.Parse` without heredocs; returns the instruction nodes and the escape token.
pub(crate) fn parse_dockerfile(text: &str) -> Res<(Vec<Node>, char)> {
    let mut d = Directives {
        escape: '\\',
        done: false,
        seen: Vec::new(),
    };
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let mut nodes = Vec::new();
    let mut line_no = 0usize;
    while let Some(raw) = lines.next() {
        line_no += 1;
        let start_line = line_no;
        let first = process_line(&mut d, raw, true)?;
        let (first, mut end) = trim_continuation(&first, d.escape);
        if end && first.is_empty() {
            continue;
        }
        let mut buf = first;
        while !end {
            let Some(raw) = lines.next() else { break };
            line_no += 1;
            let l = process_line(&mut d, raw, false)?;
            if is_comment(raw) || l.trim_start().is_empty() {
                continue;
            }
            let (l, e) = trim_continuation(&l, d.escape);
            end = e;
            buf.push_str(&l);
        }
        let mut node = node_from_line(&buf, d.escape)?;
        node.line = start_line;
        // Here-documents follow the instruction line (RUN, COPY, ADD, and ONBUILD of those).
        let lower = node.cmd.to_lowercase();
        let target = if lower == "onbuild" {
            node.args
                .first()
                .map(|a| a.to_lowercase())
                .unwrap_or_default()
        } else {
            lower
        };
        if matches!(target.as_str(), "run" | "copy" | "add") {
            for (name, expand, chomp) in heredoc_markers(&buf) {
                let mut content = String::new();
                let mut closed = false;
                for raw in lines.by_ref() {
                    line_no += 1;
                    let l = raw.trim_end_matches(['\r', '\n']);
                    let cmp = if chomp { l.trim_start_matches('\t') } else { l };
                    if cmp == name {
                        closed = true;
                        break;
                    }
                    content.push_str(cmp);
                    content.push('\n');
                }
                if !closed {
                    return err("unterminated heredoc");
                }
                node.heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                    chomp,
                });
            }
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(ChangeError::NoInstructions);
    }
    Ok((nodes, d.escape))
}

/// `newNodeFromLine`: split off the instruction and builder flags, parse the arguments.
pub(crate) fn node_from_line(line: &str, escape: char) -> Res<Node> {
    let trimmed = line.trim();
    let parts = split_ws(trimmed, 2);
    let cmd = parts[0].to_string();
    let (args, flags) = match parts.get(1) {
        Some(rest) => {
            let (a, f) = extract_builder_flags(rest, escape);
            (a.trim().to_string(), f)
        }
        None => (String::new(), Vec::new()),
    };
    let (args, json) = match cmd.to_lowercase().as_str() {
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(&args)?,
        "add" | "copy" | "volume" => parse_maybe_json_to_list(&args)?,
        "env" => (parse_name_val(&args, "ENV", escape)?, false),
        "label" => (parse_name_val(&args, "LABEL", escape)?, false),
        "arg" => (parse_words(&args, escape), false),
        "expose" | "from" => (ws_delimited(&args), false),
        "healthcheck" => parse_health_config(&args)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (
            if args.is_empty() {
                vec![]
            } else {
                vec![args.clone()]
            },
            false,
        ),
        "onbuild" => {
            if args.is_empty() {
                (vec![], false)
            } else {
                let child = node_from_line(&args, escape)?;
                let mut a = vec![child.cmd];
                a.extend(child.args);
                (a, false)
            }
        }
        _ => (vec![], false),
    };
    Ok(Node {
        cmd,
        original: line.to_string(),
        flags,
        args,
        json,
        heredocs: Vec::new(),
        line: 0,
    })
}

/// `extractBuilderFlags`: leading `--name=value` words; returns the rest and the flags.
pub(crate) fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let ch = if at_end { '\0' } else { chars[pos].1 };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || chars.get(pos + 1).map(|c| c.1) != Some('-') {
                return (line[chars[pos].0..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[chars[pos].0..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = chars[pos].1;
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos].1;
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// `parseWords`: whitespace-separated words, keeping quotes and escapes for later expansion.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let mut ch = if at_end { '\0' } else { chars[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // In quotes: the escape token protects the next character except in single quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// `parseNameVal` (ENV, LABEL): `k=v k2=v2` or legacy `k v…`; flattened as key, value, sep.
pub(crate) fn parse_name_val(rest: &str, key: &str, escape: char) -> Res<Vec<String>> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(vec![]);
    }
    if !words[0].contains('=') {
        let parts = split_ws(rest, 2);
        if parts.len() < 2 {
            return err(format!("{key} must have two arguments"));
        }
        return Ok(vec![
            parts[0].to_string(),
            parts[1].to_string(),
            String::new(),
        ]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(&w)
            ));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

pub(crate) fn ws_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return vec![];
    }
    split_ws(rest, 0).into_iter().map(str::to_string).collect()
}

pub(crate) enum JsonParse {
    Array(Vec<String>),
    NotStrings,
    NotJson,
}

pub(crate) fn parse_json(rest: &str) -> JsonParse {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return JsonParse::NotJson;
    }
    match serde_json::from_str::<Vec<Value>>(rest) {
        Err(_) => JsonParse::NotJson,
        Ok(items) => {
            let strings: Option<Vec<String>> = items
                .into_iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect();
            strings.map_or(JsonParse::NotStrings, JsonParse::Array)
        }
    }
}

pub(crate) const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

pub(crate) fn parse_maybe_json(rest: &str) -> Res<(Vec<String>, bool)> {
    if rest.is_empty() {
        return Ok((vec![], false));
    }
    match parse_json(rest) {
        JsonParse::Array(a) => Ok((a, true)),
        JsonParse::NotStrings => err(NOT_STRING_ARRAY),
        JsonParse::NotJson => Ok((vec![rest.to_string()], false)),
    }
}

pub(crate) fn parse_maybe_json_to_list(rest: &str) -> Res<(Vec<String>, bool)> {
    match parse_json(rest) {
        JsonParse::Array(a) => Ok((a, true)),
        JsonParse::NotStrings => err(NOT_STRING_ARRAY),
        JsonParse::NotJson => Ok((ws_delimited(rest), false)),
    }
}

/// `parseHealthConfig`: type word, then a command in JSON or shell form.
pub(crate) fn parse_health_config(rest: &str) -> Res<(Vec<String>, bool)> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((vec![], false));
    }
    let typ = &rest[..sep];
    let cmd = rest[sep..].trim_start();
    let (mut args, json) = parse_maybe_json(cmd)?;
    args.insert(0, typ.to_string());
    Ok((args, json))
}

#[cfg(test)]
mod heredoc_tests {
    use super::*;

    #[test]
    fn markers_and_bodies() {
        assert_eq!(
            heredoc_markers("cat <<EOF > /f <<-'X' '<<notone'"),
            vec![("EOF".into(), true, false), ("X".into(), false, true)]
        );
        assert!(heredoc_markers("echo a<<<b").is_empty());
        let text = "FROM busybox\nRUN cat <<EOF > /f\nhello $X\nEOF\nRUN <<-\"T\"\n\tline\n\tT\nCOPY <<A /a\nx\nA\n";
        let (nodes, _) = parse_dockerfile(text).unwrap();
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[1].original, "RUN cat <<EOF > /f");
        assert_eq!(nodes[1].heredocs[0].content, "hello $X\n");
        assert!(nodes[1].heredocs[0].expand);
        assert_eq!(nodes[2].heredocs[0].content, "line\n");
        assert!(!nodes[2].heredocs[0].expand);
        assert_eq!(nodes[3].heredocs[0].name, "A");
        assert_eq!(nodes[3].line, 8);
        assert!(parse_dockerfile("FROM x\nRUN <<EOF\nno end\n").is_err());
    }
}
