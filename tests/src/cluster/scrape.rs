//! A scrape of a `/metrics` page (Prometheus text format), for tests and the chaos
//! report.

use std::collections::BTreeMap;

/// One scrape: `series` (name and labels as written) to value.
pub struct Scrape(pub BTreeMap<String, f64>);

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("line {l}"));
                let value = value.parse().unwrap_or_else(|_| panic!("value in {l}"));
                (series.to_string(), value)
            })
            .collect();
        Scrape(series)
    }

    /// The value of `name` with exactly `labels` (in the exporter's order: sorted by
    /// label name), 0 when the series is absent (a counter not yet incremented).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", inner.join(","))
        };
        self.0.get(&key).copied().unwrap_or(0.0)
    }

    /// Sum over every series of `name` whose labels contain every one of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.split('{').next() == Some(name))
            .filter(|(k, _)| {
                labels
                    .iter()
                    .all(|(l, v)| k.contains(&format!("{l}=\"{v}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }
}
