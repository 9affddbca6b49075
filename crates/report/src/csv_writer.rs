//! The one CSV writer of upshot (reports and the dashboard's tables): RFC 4180 quoting
//! by the `csv` crate, and one defusing rule against formula injection, since a
//! placement, campaign or label name comes from the storefront and a spreadsheet would
//! run `=HYPERLINK(...)` or `+cmd|...` found at the start of a cell.

/// Characters that make a spreadsheet read a cell as a formula (OWASP's list: tab and
/// carriage return included, which some spreadsheets skip before looking further).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The cell as written: prefixed with `'` when a spreadsheet would read it as a
/// formula; a plain number (`-1.5`) stays as it is.
pub fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) && !is_plain_number(cell) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// `-?digits(.digits)?(e-?digits)?`: what upshot writes for its own figures.
fn is_plain_number(cell: &str) -> bool {
    let unsigned = cell.strip_prefix('-').unwrap_or(cell);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent.strip_prefix('-').unwrap_or(exponent))),
        None => (unsigned, None),
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(digits)
}

/// Rows of cells into CSV text, every cell defused.
pub struct CsvWriter {
    writer: csv::Writer<Vec<u8>>,
}

impl Default for CsvWriter {
    fn default() -> CsvWriter {
        CsvWriter { writer: csv::WriterBuilder::new().flexible(true).from_writer(Vec::new()) }
    }
}

impl CsvWriter {
    pub fn row<'a>(&mut self, cells: impl IntoIterator<Item = &'a str>) {
        let record: Vec<std::borrow::Cow<'_, str>> = cells.into_iter().map(defuse).collect();
        // Writing to memory cannot fail.
        let _ = self.writer.write_record(record.iter().map(|cell| cell.as_bytes()));
    }

    pub fn finish(self) -> String {
        let bytes = self.writer.into_inner().unwrap_or_default();
        // Every cell was a &str: the output is UTF-8.
        String::from_utf8(bytes).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_formula_injection_is_defused_in_every_form() {
        for hostile in ["=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"] {
            assert!(defuse(hostile).starts_with('\''), "{hostile:?}");
        }
        for plain in ["-1.5", "12", "0.25", "-3e-7", "hero", "", "1e5"] {
            assert_eq!(defuse(plain), plain);
        }
        let mut writer = CsvWriter::default();
        writer.row(["name", "n"]);
        writer.row(["a,\"b\"", "-1.5"]);
        writer.row(["=cmd()", "line\nbreak"]);
        assert_eq!(writer.finish(), "name,n\n\"a,\"\"b\"\"\",-1.5\n'=cmd(),\"line\nbreak\"\n");
    }
}
