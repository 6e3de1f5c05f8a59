//! `--exclude` / `--include` exactly as aws-cli's `filters.py` applies them.
//!
//! Every pattern is joined (like `os.path.join`) to the source root *and* to the destination
//! root; both expansions are matched, with Python's `fnmatch`, against the full name of every
//! file on *both* sides (an absolute local path, or `bucket/key`). Everything starts included and
//! the last matching pattern wins. The same [`Filters`] run over the source and the destination
//! listing, so an excluded destination file is never compared and never deleted.
//!
//! Matching is a small hand-written fnmatch rather than `globset`: Python's `fnmatch` has no
//! escapes, `*` and `?` cross `/`, an unclosed `[` is a literal, and `[!...]` negates; writing
//! those 60 lines down is simpler than proving globset's options reproduce each of them.
//! As in aws-cli, glob characters in the roots are not escaped (a root `br[1]` is a character
//! class), and a source file can match the destination-root expansion: the compatibility tests
//! compare output lines with aws-cli, so hoist keeps those quirks.

/// What a pattern does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterKind {
    Exclude,
    Include,
}

/// A compiled fnmatch pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: any one character, `/` included.
    Any,
    /// `*`: any run of characters, `/` included.
    Star,
    /// `[...]` / `[!...]`.
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl Pattern {
    /// Compiles a pattern the way Python's `fnmatch.translate` reads it.
    pub(crate) fn new(pattern: &str) -> Pattern {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '[' => {
                    // Find the closing `]`: a `]` right after `[` or `[!` is a member.
                    let mut j = i;
                    if j < chars.len() && chars[j] == '!' {
                        j += 1;
                    }
                    if j < chars.len() && chars[j] == ']' {
                        j += 1;
                    }
                    while j < chars.len() && chars[j] != ']' {
                        j += 1;
                    }
                    if j >= chars.len() {
                        tokens.push(Token::Literal('['));
                        continue;
                    }
                    let mut body = &chars[i..j];
                    i = j + 1;
                    let negated = body.first() == Some(&'!');
                    if negated {
                        body = &body[1..];
                    }
                    let mut items = Vec::new();
                    let mut k = 0;
                    while k < body.len() {
                        if k + 2 < body.len() && body[k + 1] == '-' {
                            // Python drops reversed ranges (`[z-a]` matches nothing).
                            if body[k] <= body[k + 2] {
                                items.push((body[k], body[k + 2]));
                            }
                            k += 3;
                        } else {
                            items.push((body[k], body[k]));
                            k += 1;
                        }
                    }
                    tokens.push(Token::Class { negated, items });
                }
                other => tokens.push(Token::Literal(other)),
            }
        }
        Pattern { tokens }
    }

    /// Whether the whole of `text` matches (case-sensitive, as on POSIX).
    pub(crate) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let tokens = &self.tokens;
        let (mut t, mut p) = (0usize, 0usize);
        // Where to resume after the last `*`: (token after the star, text position).
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            if p < tokens.len() {
                match &tokens[p] {
                    Token::Star => {
                        backtrack = Some((p + 1, t));
                        p += 1;
                        continue;
                    }
                    token if t < text.len() && single(token, text[t]) => {
                        p += 1;
                        t += 1;
                        continue;
                    }
                    _ => {}
                }
            } else if t == text.len() {
                return true;
            }
            match backtrack {
                Some((after_star, start)) if start < text.len() => {
                    backtrack = Some((after_star, start + 1));
                    p = after_star;
                    t = start + 1;
                }
                _ => return false,
            }
        }
    }
}

fn single(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::Any => true,
        Token::Class { negated, items } => {
            items.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
        }
        Token::Star => unreachable!("stars are handled by the matcher"),
    }
}

/// Python's `os.path.join(root, pattern)` on POSIX: an absolute pattern replaces the root.
pub(crate) fn join_root(root: &str, pattern: &str) -> String {
    if pattern.starts_with('/') || root.is_empty() {
        pattern.to_string()
    } else if root.ends_with('/') {
        format!("{root}{pattern}")
    } else {
        format!("{root}/{pattern}")
    }
}

/// The filters of one run, expanded against both roots.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filters {
    /// (kind, pattern joined to the source root, pattern joined to the destination root).
    rules: Vec<(FilterKind, Pattern, Pattern)>,
}

impl Filters {
    /// `source_root` / `destination_root`: an absolute local directory without trailing
    /// separator, or `bucket/` + the prefix as typed (aws-cli's `_get_s3_root`).
    pub(crate) fn new(
        patterns: &[(FilterKind, String)],
        source_root: &str,
        destination_root: &str,
    ) -> Filters {
        Filters {
            rules: patterns
                .iter()
                .map(|(kind, pattern)| {
                    (
                        *kind,
                        Pattern::new(&join_root(source_root, pattern)),
                        Pattern::new(&join_root(destination_root, pattern)),
                    )
                })
                .collect(),
        }
    }

    /// Whether a file (its absolute local path, or `bucket/key`) takes part in the sync.
    pub(crate) fn includes(&self, candidate: &str) -> bool {
        let mut included = true;
        for (kind, source, destination) in &self.rules {
            if source.matches(candidate) {
                included = *kind == FilterKind::Include;
            }
            if destination.matches(candidate) {
                included = *kind == FilterKind::Include;
            }
        }
        included
    }
}

/// The patterns of an `--exclude-from` file: one a line, trailing `\r` and surrounding blanks
/// trimmed, blank lines and lines starting with `#` skipped.
pub(crate) fn parse_exclude_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (filters, the names they let through).
    type Case<'a> = (&'a [(FilterKind, &'a str)], &'a [&'a str]);

    #[test]
    fn fnmatch_table() {
        // (pattern, text, matches) — each checked against Python 3.11's fnmatch.fnmatchcase.
        let cases = [
            ("*", "", true),
            ("*", "a/b/c", true),
            ("*.txt", "a.txt", true),
            ("*.txt", "dir/a.txt", true),
            ("*.txt", "a.txt.gz", false),
            ("/r/*.txt", "/r/sub/deep/a.txt", true),
            ("/r/sub/*", "/r/sub-z", false),
            ("/r/sub*", "/r/sub-z", true),
            ("/r/.*", "/r/.hidden/h", true),
            ("?", "/", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[abc]", "b", true),
            ("[!abc]", "b", false),
            ("[!abc]", "/", true),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[]]", "]", true),
            ("[!]]", "a", true),
            ("[a-]", "-", true),
            ("[z-a]", "m", false),
            ("br[1]/*", "br1/x", true),
            ("br[1]/*", "br[1]/x", false),
            ("[unclosed", "[unclosed", true),
            ("a\\*", "a\\bc", true),
            ("A*", "a", false),
            ("**a", "xxa", true),
            ("*a*b*c", "xaxbxxc", true),
            ("*a*b*c", "xaxbxx", false),
            ("é*", "été", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                Pattern::new(pattern).matches(text),
                want,
                "{pattern:?} vs {text:?}"
            );
        }
    }

    #[test]
    fn join_like_os_path_join() {
        assert_eq!(join_root("/src", "*.txt"), "/src/*.txt");
        assert_eq!(join_root("b/", "*.txt"), "b/*.txt");
        assert_eq!(join_root("b/pre", "x"), "b/pre/x");
        assert_eq!(join_root("/src", "/abs/*"), "/abs/*");
        assert_eq!(join_root("/", "x"), "/x");
    }

    fn filters(patterns: &[(FilterKind, &str)]) -> Filters {
        let patterns: Vec<_> = patterns.iter().map(|(k, p)| (*k, p.to_string())).collect();
        Filters::new(&patterns, "/t1", "bucket2/")
    }

    /// The observed table of docs/sync-semantics.md §2, on the tree
    /// `.hf .hidden/h a-b.txt a.txt noext sub-z sub/c.json sub/deep/d.bin`.
    #[test]
    fn observed_aws_cli_table() {
        use FilterKind::{Exclude, Include};
        let tree = [
            ".hf",
            ".hidden/h",
            "a-b.txt",
            "a.txt",
            "noext",
            "sub-z",
            "sub/c.json",
            "sub/deep/d.bin",
        ];
        let cases: &[Case] = &[
            (&[(Exclude, "*"), (Include, "*.txt")], &["a-b.txt", "a.txt"]),
            (
                &[(Exclude, "sub/*")],
                &[".hf", ".hidden/h", "a-b.txt", "a.txt", "noext", "sub-z"],
            ),
            (
                // The spec's table omits `noext`; aws-cli 1.46.3 uploads it (checked on moto).
                &[(Exclude, "sub*"), (Include, "sub/deep/*")],
                &[
                    ".hf",
                    ".hidden/h",
                    "a-b.txt",
                    "a.txt",
                    "noext",
                    "sub/deep/d.bin",
                ],
            ),
            (
                &[(Exclude, ".*")],
                &[
                    "a-b.txt",
                    "a.txt",
                    "noext",
                    "sub-z",
                    "sub/c.json",
                    "sub/deep/d.bin",
                ],
            ),
            (&[(Exclude, "/sub/*")], &tree),
            (&[(Exclude, "./sub/*")], &tree),
            (&[(Exclude, "sub")], &tree),
            (&[(Exclude, "sub/")], &tree),
        ];
        for (patterns, want) in cases {
            let filters = filters(patterns);
            let local: Vec<&str> = tree
                .iter()
                .copied()
                .filter(|rel| filters.includes(&format!("/t1/{rel}")))
                .collect();
            assert_eq!(&local, want, "local side, {patterns:?}");
            // The destination listing is filtered the same way (so excluded keys survive).
            let remote: Vec<&str> = tree
                .iter()
                .copied()
                .filter(|rel| filters.includes(&format!("bucket2/{rel}")))
                .collect();
            assert_eq!(&remote, want, "remote side, {patterns:?}");
        }
    }

    #[test]
    fn cross_root_quirk_is_kept() {
        // sync s3://bucket1/pre/sub s3://bucket1/pre --exclude 'sub*' excludes everything.
        let filters = Filters::new(
            &[(FilterKind::Exclude, "sub*".to_string())],
            "bucket1/pre/sub",
            "bucket1/pre",
        );
        assert!(!filters.includes("bucket1/pre/sub/c.json"));
        assert!(!filters.includes("bucket1/pre/subway"));
        assert!(filters.includes("bucket1/pre/a.txt"));
    }

    #[test]
    fn parent_pattern_matches_raw_key() {
        // download --exclude '../*' excludes the key `pre/../escape.txt`.
        let filters = Filters::new(
            &[(FilterKind::Exclude, "../*".to_string())],
            "bucket1/pre",
            "/d1",
        );
        assert!(!filters.includes("bucket1/pre/../escape.txt"));
        assert!(filters.includes("bucket1/pre/a.txt"));
    }

    #[test]
    fn no_filters_include_everything() {
        assert!(Filters::default().includes("anything"));
    }

    #[test]
    fn exclude_file_lines() {
        assert_eq!(
            parse_exclude_file("*.tmp\r\n\n# comment\n  logs/*  \n"),
            ["*.tmp", "logs/*"]
        );
    }
}
