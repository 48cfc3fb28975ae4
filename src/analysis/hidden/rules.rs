//! The hidden-session rules' values, read from `data/hidden-rules.tsv`: the one definition the
//! Rust analysis and the fleet-wide Spark job (`spark/hidden_sessions.py`) share.
//!
//! Owns parsing that file (embedded at build time with `include_str!`, parsed once on first use)
//! into [`Rules`]: the catalogue tables, the periodicity and keep-alive thresholds and the
//! score weights. Promises: the embedded file is checked by a unit test, so parsing it cannot
//! fail at run time; every string in [`Rules`] borrows from the embedded text (no copies).

use super::catalogue::{CatalogueHit, CatalogueKind};
use std::sync::LazyLock;

/// The shared rules file, as built in.
pub const RULES_TSV: &str = include_str!("../../../data/hidden-rules.tsv");

/// Every value the rules use.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Fewest sessions a series needs before it can be called periodic.
    pub min_sessions: usize,
    /// Shortest median interval considered: below it, sessions are a burst, not a timer.
    pub min_period_s: f64,
    /// Score from which a series counts as periodic.
    pub periodic_score: f64,
    /// Relative jitter at which the regularity part of the score reaches 0.
    pub jitter_scale: f64,
    /// Intervals within this fraction of the median interval count as "on the beat".
    pub on_beat: f64,
    /// Intervals from which the count part of the score is full.
    pub full_count_intervals: f64,
    /// Score weights: interval regularity, share on the beat, count, size regularity.
    pub weight_interval: f64,
    pub weight_on_beat: f64,
    pub weight_count: f64,
    pub weight_size: f64,
    /// Decimals hidden.csv shows period and jitter with.
    pub period_decimals: usize,
    pub keepalive_min_duration_s: f64,
    pub keepalive_min_pkts: u64,
    pub keepalive_max_bytes_per_pkt: f64,
    pub keepalive_min_gap_s: f64,
    /// Share of a group's sessions that must be keep-alives for a keep-alive pattern.
    pub keepalive_min_share: f64,
    /// hidden.csv's score of catalogue and keep-alive patterns that are not periodic.
    pub catalogue_score: f64,
    pub keepalive_score: f64,
    /// Catalogue by (IP protocol, responder port).
    pub ports: Vec<(u8, u16, CatalogueHit)>,
    /// Catalogue by IP protocol.
    pub ip_protocols: Vec<(u8, CatalogueHit)>,
    /// Catalogue by server name (the name or a subdomain).
    pub names: Vec<(&'static str, CatalogueHit)>,
    pub interactive_ports: Vec<(u8, u16)>,
    pub web_ports: Vec<(u8, u16)>,
}

static RULES: LazyLock<Rules> = LazyLock::new(|| match parse(RULES_TSV) {
    Ok(rules) => rules,
    // Unreachable: the built-in file is compile-time constant and `embedded_rules_parse` checks it.
    Err(e) => panic!("data/hidden-rules.tsv: {e}"),
});

/// The built-in rules.
pub fn rules() -> &'static Rules {
    &RULES
}

/// A line of the rules file that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RulesError {
    pub line: usize,
    pub message: String,
}

/// Parses the rules file format (see the file's header).
pub fn parse(text: &'static str) -> Result<Rules, RulesError> {
    let mut settings: Vec<(&str, &str, usize)> = Vec::new();
    let mut ports = Vec::new();
    let mut ip_protocols = Vec::new();
    let mut names = Vec::new();
    let mut interactive_ports = Vec::new();
    let mut web_ports = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let err = |message: String| RulesError {
            line: line_no,
            message,
        };
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&'static str> = line.split('\t').collect();
        match fields.as_slice() {
            ["setting", name, value] => settings.push((name, value, line_no)),
            ["port", proto, port, kind, service, reason] => {
                ports.push((num(proto).map_err(err)?, num(port).map_err(err)?, {
                    hit(kind, service, reason).map_err(err)?
                }))
            }
            ["ip_proto", proto, kind, service, reason] => ip_protocols.push((
                num(proto).map_err(err)?,
                hit(kind, service, reason).map_err(err)?,
            )),
            ["name", name, kind, service, reason] => {
                names.push((*name, hit(kind, service, reason).map_err(err)?))
            }
            ["interactive_port", proto, port] => {
                interactive_ports.push((num(proto).map_err(err)?, num(port).map_err(err)?))
            }
            ["web_port", proto, port] => {
                web_ports.push((num(proto).map_err(err)?, num(port).map_err(err)?))
            }
            _ => return Err(err(format!("unknown record {line:?}"))),
        }
    }
    let setting = |name: &str| -> Result<f64, RulesError> {
        let (_, value, line) = settings
            .iter()
            .find(|(n, _, _)| *n == name)
            .ok_or_else(|| RulesError {
                line: 0,
                message: format!("setting {name} is missing"),
            })?;
        value.parse::<f64>().map_err(|_| RulesError {
            line: *line,
            message: format!("setting {name}: {value:?} is not a number"),
        })
    };
    let count = |name: &str| -> Result<u64, RulesError> {
        let value = setting(name)?;
        if value >= 0.0 && value.fract() == 0.0 && value <= u32::MAX as f64 {
            Ok(value as u64)
        } else {
            Err(RulesError {
                line: 0,
                message: format!("setting {name} must be a whole number"),
            })
        }
    };
    Ok(Rules {
        min_sessions: count("min_sessions")? as usize,
        min_period_s: setting("min_period_s")?,
        periodic_score: setting("periodic_score")?,
        jitter_scale: setting("jitter_scale")?,
        on_beat: setting("on_beat")?,
        full_count_intervals: setting("full_count_intervals")?,
        weight_interval: setting("weight_interval")?,
        weight_on_beat: setting("weight_on_beat")?,
        weight_count: setting("weight_count")?,
        weight_size: setting("weight_size")?,
        period_decimals: count("period_decimals")? as usize,
        keepalive_min_duration_s: setting("keepalive_min_duration_s")?,
        keepalive_min_pkts: count("keepalive_min_pkts")?,
        keepalive_max_bytes_per_pkt: setting("keepalive_max_bytes_per_pkt")?,
        keepalive_min_gap_s: setting("keepalive_min_gap_s")?,
        keepalive_min_share: setting("keepalive_min_share")?,
        catalogue_score: setting("catalogue_score")?,
        keepalive_score: setting("keepalive_score")?,
        ports,
        ip_protocols,
        names,
        interactive_ports,
        web_ports,
    })
}

fn num<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a valid number here"))
}

fn hit(
    kind: &'static str,
    service: &'static str,
    reason: &'static str,
) -> Result<CatalogueHit, String> {
    let kind = CatalogueKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind)
        .ok_or_else(|| format!("unknown kind {kind:?}"))?;
    Ok(CatalogueHit {
        kind,
        service,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_parse() {
        let rules = parse(RULES_TSV).unwrap();
        // The values docs/initiators.md states.
        assert_eq!(rules.min_sessions, 4);
        assert_eq!(rules.min_period_s, 1.0);
        assert_eq!(rules.periodic_score, 0.7);
        assert_eq!(rules.keepalive_min_pkts, 6);
        let weights =
            rules.weight_interval + rules.weight_on_beat + rules.weight_count + rules.weight_size;
        assert!((weights - 1.0).abs() < 1e-12);
        assert!(
            rules
                .ports
                .iter()
                .any(|(p, port, h)| *p == 17 && *port == 123 && h.kind == CatalogueKind::TimeSync)
        );
        assert!(
            rules
                .names
                .iter()
                .any(|(n, h)| *n == "windowsupdate.com" && h.kind == CatalogueKind::Update)
        );
        assert_eq!(rules.interactive_ports.len(), 5);
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(parse("port\t17\tx\tdiscovery\ta\tb").unwrap_err().line, 1);
        assert!(parse("# ok\nfrobnicate\t1").unwrap_err().line == 2);
        assert!(
            parse("port\t17\t53\tnonsense\tdns\tDNS")
                .unwrap_err()
                .message
                .contains("unknown kind")
        );
        assert!(
            parse("")
                .unwrap_err()
                .message
                .contains("min_sessions is missing")
        );
    }
}
