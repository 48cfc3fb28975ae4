//! A CSV file the binary wrote (sessions.csv, hidden.csv) as its column names, in order, and
//! its rows as column -> value.

use std::collections::HashMap;
use std::path::Path;

pub type Row = HashMap<String, String>;

pub fn read(path: &Path) -> (Vec<String>, Vec<Row>) {
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = reader.headers().expect("csv header").clone();
    let rows = reader
        .records()
        .map(|record| {
            let record = record.expect("csv record");
            headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect();
    (headers.iter().map(str::to_string).collect(), rows)
}
