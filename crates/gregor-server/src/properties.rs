//! `server.properties` read as Java's `Properties.load` reads it (Kafka reads its config file
//! that way): `key=value`, `key: value` or `key value`; `#`/`!` comment lines; a line ending in
//! an odd number of backslashes continues on the next (whose leading blanks are dropped); and
//! escapes (`\t`, `\n`, `\r`, `\f`, `\uXXXX`, `\` before any other character is that character).

/// The `(key, value)` pairs of a properties file, in order.
pub fn parse(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut lines = text.lines();
    while let Some(first) = lines.next() {
        let first = first.trim_start_matches(is_blank);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::from(first);
        while ends_in_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some(next) => logical.push_str(next.trim_start_matches(is_blank)),
                None => break,
            }
        }
        pairs.push(split(&logical));
    }
    pairs
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// An odd number of trailing backslashes: the last one escapes the line end.
fn ends_in_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits a logical line at the first unescaped `=`, `:` or blank (blanks around a `=` or `:`
/// belong to the separator) and unescapes both sides.
fn split(line: &str) -> (String, String) {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '=' | ':' => break,
            c if is_blank(c) => break,
            _ => i += 1,
        }
    }
    let key_end = i.min(chars.len());
    let mut j = key_end;
    while j < chars.len() && is_blank(chars[j]) {
        j += 1;
    }
    if j < chars.len() && matches!(chars[j], '=' | ':') {
        j += 1;
        while j < chars.len() && is_blank(chars[j]) {
            j += 1;
        }
    }
    (unescape(&chars[..key_end]), unescape(&chars[j..]))
}

fn unescape(chars: &[char]) -> String {
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '\\' || i + 1 == chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let escaped = chars[i + 1];
        i += 2;
        match escaped {
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex: String = chars[i..chars.len().min(i + 4)].iter().collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(c) if hex.len() == 4 => {
                        out.push(c);
                        i += 4;
                    }
                    // Java refuses a malformed \u escape; keep the text as written.
                    _ => out.push_str("\\u"),
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn separators_comments_and_blanks() {
        let text = "# comment\n! also\n\n  a=1\nb : 2\nc 3\nd\t=\t4\ne\nf=\ng = x = y\n";
        assert_eq!(
            parse(text),
            owned(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", ""),
                ("f", ""),
                ("g", "x = y"),
            ])
        );
    }

    #[test]
    fn continuations_and_escapes() {
        let text = "node.id=\\\n   1\nlisteners=PLAINTEXT://a:1,\\\n    PLAINTEXT://b:2\n\
                    path=C:\\\\data\ntab=a\\tb\nkey\\=with\\:colon=v\nsnow=\\u2603\nend=odd\\\\\nnext=n\n";
        assert_eq!(
            parse(text),
            owned(&[
                ("node.id", "1"),
                ("listeners", "PLAINTEXT://a:1,PLAINTEXT://b:2"),
                ("path", "C:\\data"),
                ("tab", "a\tb"),
                ("key=with:colon", "v"),
                ("snow", "\u{2603}"),
                ("end", "odd\\"),
                ("next", "n"),
            ])
        );
    }

    #[test]
    fn a_continuation_on_the_last_line_ends_the_value() {
        assert_eq!(parse("a=1\\"), owned(&[("a", "1")]));
    }
}
