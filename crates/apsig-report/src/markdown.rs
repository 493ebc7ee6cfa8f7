//! Small Markdown helpers for the per-run report.

/// Render a GitHub-flavoured Markdown table.
///
/// Cells are escaped: `|` becomes `\|`, line breaks become `<br>` so that a
/// cell never breaks the table. Rows shorter than the header are padded with
/// empty cells; longer rows keep their extra cells (GFM ignores them when
/// rendering, but nothing is silently dropped from the source). With no
/// headers the result is the empty string. The output ends with a newline.
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    if headers.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    push_row(&mut out, headers.iter().copied(), headers.len());
    push_row(&mut out, headers.iter().map(|_| "---"), headers.len());
    for row in rows {
        push_row(&mut out, row.iter().map(String::as_str), headers.len());
    }
    out
}

fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>, min_cells: usize) {
    let mut n = 0;
    out.push('|');
    for cell in cells {
        out.push(' ');
        out.push_str(&escape_cell(cell));
        out.push_str(" |");
        n += 1;
    }
    for _ in n..min_cells {
        out.push_str("  |");
    }
    out.push('\n');
}

fn escape_cell(cell: &str) -> String {
    let mut s = String::with_capacity(cell.len());
    let mut chars = cell.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '|' => s.push_str("\\|"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                s.push_str("<br>");
            }
            '\n' => s.push_str("<br>"),
            _ => s.push(c),
        }
    }
    s
}

/// Format `x` with exactly `digits` digits after the decimal point;
/// `"n/a"` for NaN and infinities. Negative values that round to zero are
/// printed without the sign (`-0.0001` with 2 digits gives `"0.00"`).
pub fn fmt_num(x: f64, digits: usize) -> String {
    if !x.is_finite() {
        return "n/a".to_string();
    }
    let s = format!("{x:.digits$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_basic_and_escaping() {
        let t = markdown_table(
            &["name", "a|b"],
            &[vec!["x|y".into(), "1".into()], vec!["line\nbreak".into()], vec!["1".into(), "2".into(), "3".into()]],
        );
        let expected = "| name | a\\|b |\n\
                        | --- | --- |\n\
                        | x\\|y | 1 |\n\
                        | line<br>break |  |\n\
                        | 1 | 2 | 3 |\n";
        assert_eq!(t, expected);
    }

    #[test]
    fn table_without_headers_is_empty() {
        assert_eq!(markdown_table(&[], &[vec!["a".into()]]), "");
    }

    #[test]
    fn table_header_only() {
        assert_eq!(markdown_table(&["a"], &[]), "| a |\n| --- |\n");
    }

    #[test]
    fn fmt_num_cases() {
        assert_eq!(fmt_num(1.23456, 3), "1.235");
        assert_eq!(fmt_num(2.0, 0), "2");
        assert_eq!(fmt_num(-1.5, 2), "-1.50");
        assert_eq!(fmt_num(-0.0001, 2), "0.00");
        assert_eq!(fmt_num(-0.0, 1), "0.0");
        assert_eq!(fmt_num(f64::NAN, 2), "n/a");
        assert_eq!(fmt_num(f64::INFINITY, 2), "n/a");
        assert_eq!(fmt_num(f64::NEG_INFINITY, 2), "n/a");
    }
}
