//! report.html: one self-contained page a person reads instead of the CSV.
//!
//! Owns the HTML report: the capture at a glance (span, packets, sessions, what could not be
//! decoded, read errors), a timeline of session starts (by protocol, and user versus
//! technology once the hidden-session analysis runs), the hidden sessions grouped by host and
//! destination with their reasons and a small interval plot per periodic pattern (or a plain
//! "not available" notice while that analysis does not exist), top services and talkers, and
//! a sortable, filterable, paginated table of a bounded sample of sessions. Hand-written
//! HTML, CSS and vanilla JavaScript, all inline: the page loads nothing from anywhere.
//! Promises: the size is bounded by [`super::data`]'s caps whatever the number of sessions;
//! every value that came from packets or inputs is escaped (HTML text and attributes with
//! entities, data for the script as JSON with `<`, `>`, `&` escaped, and the script puts it in
//! the page only as text, never as markup); the page records its own script errors and what it
//! rendered in `#selfcheck` so a headless browser can check it.

use super::data::{
    HiddenAnalysis, MAX_HIDDEN_GROUPS, MAX_PATTERN_INTERVALS, MAX_PLOTTED_PATTERNS, ReportData,
    TIMELINE_PROTOCOLS,
};
use super::jsonl::push_json_string;
use super::terminal::{bytes, clean, count, duration, link_name, percent, utc};
use crate::analysis::{CaptureSummary, END_REASONS};
use crate::decode::SkipReason;
use crate::session::ConnState;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// File name inside the output directory.
pub const REPORT_FILE_NAME: &str = "report.html";
/// Rows of the top-services and top-talkers tables.
const TOP_N: usize = 20;

/// Writes `dir/report.html`.
pub fn write_report(dir: &Path, summary: &CaptureSummary, data: &ReportData) -> io::Result<()> {
    std::fs::write(dir.join(REPORT_FILE_NAME), render(summary, data))
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text made safe inside a `<script>` element: no `<`, `>` or `&` survives (inside JSON
/// strings they become `\u003c` etc.; outside strings JSON has none).
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The whole page.
pub fn render(summary: &CaptureSummary, data: &ReportData) -> String {
    let mut page = String::with_capacity(64 * 1024);
    page.push_str(HEAD);
    page.push_str("<header><h1>sessionscope report</h1><p class=\"sub\">");
    let names: Vec<String> = summary
        .files
        .iter()
        .map(|f| escape_html(&clean(&f.name)))
        .collect();
    let _ = write!(
        page,
        "{} &middot; sessionscope {}</p></header>\n<main>\n",
        if names.is_empty() {
            "no input".to_string()
        } else {
            names.join(", ")
        },
        env!("CARGO_PKG_VERSION")
    );
    glance(&mut page, summary);
    page.push_str(
        "<section id=\"timeline-section\"><h2>Sessions over time</h2>\
         <p class=\"note\" id=\"timeline-note\"></p><div id=\"timeline\"></div>\
         <div id=\"timeline-classes\"></div></section>\n",
    );
    hidden_section(&mut page, data.hidden.as_ref());
    tops(&mut page, summary);
    breakdowns(&mut page, summary);
    page.push_str(
        "<section id=\"sessions-section\"><h2>Sessions</h2><p class=\"note\" id=\"sessions-note\">\
         </p><div id=\"sessions\"></div></section>\n",
    );
    page.push_str("</main>\n<output id=\"selfcheck\" hidden></output>\n");
    page.push_str("<script type=\"application/json\" id=\"report-data\">");
    page.push_str(&script_safe(&data_json(summary, data)));
    page.push_str("</script>\n<script>");
    page.push_str(SCRIPT);
    page.push_str("</script>\n</body>\n</html>\n");
    page
}

fn card(page: &mut String, label: &str, value: &str, detail: &str) {
    let _ = write!(
        page,
        "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{}</div>\
         <div class=\"detail\">{}</div></div>",
        escape_html(label),
        escape_html(value),
        escape_html(detail)
    );
}

fn glance(page: &mut String, s: &CaptureSummary) {
    page.push_str("<section id=\"glance\"><h2>The capture at a glance</h2><div class=\"cards\">");
    match (s.first_ts, s.last_ts) {
        (Some(first), Some(last)) => card(
            page,
            "Span",
            &duration(s.span_nanos()),
            &format!("{} UTC to {} UTC", utc(first), utc(last)),
        ),
        _ => card(page, "Span", "no packets", ""),
    }
    card(
        page,
        "Packets",
        &count(s.packets_read),
        &format!(
            "{} decoded, {} skipped, {} on the wire",
            count(s.packets_decoded),
            count(s.skipped_total()),
            bytes(s.wire_bytes)
        ),
    );
    card(
        page,
        "Sessions",
        &count(s.sessions.sessions),
        &format!(
            "{} packets, {} IP bytes",
            count(s.sessions.pkts),
            bytes(s.sessions.ip_bytes)
        ),
    );
    card(
        page,
        "Not decoded",
        &count(s.skipped_total()),
        &format!("{} of packets", percent(s.skipped_total(), s.packets_read)),
    );
    if s.tracker.evicted > 0 {
        card(
            page,
            "Evicted",
            &count(s.tracker.evicted),
            "sessions ended early to stay under --max-sessions: their counts are split",
        );
    }
    page.push_str("</div>\n");

    page.push_str("<h3>Files</h3><table class=\"sortable\" id=\"files\"><thead><tr><th>file</th><th class=\"num\">packets</th><th>link types</th><th>read</th></tr></thead><tbody>");
    for f in &s.files {
        let links: Vec<String> = f.link_types.iter().map(|l| link_name(*l)).collect();
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"num\" data-v=\"{}\">{}</td><td>{}</td><td{}>{}</td></tr>",
            escape_html(&clean(&f.name)),
            f.packets,
            count(f.packets),
            escape_html(&links.join(", ")),
            if f.error.is_some() {
                " class=\"bad\""
            } else {
                ""
            },
            escape_html(&f.error.as_deref().map_or_else(
                || "to the end".to_string(),
                |e| format!("stopped early: {}", clean(e))
            )),
        );
    }
    page.push_str("</tbody></table>\n");

    page.push_str("<h3>What could not be decoded</h3>");
    let skipped: Vec<(SkipReason, u64)> = SkipReason::ALL
        .iter()
        .map(|&r| (r, s.skipped_for(r)))
        .filter(|&(_, n)| n > 0)
        .collect();
    if skipped.is_empty() {
        page.push_str("<p class=\"note\">Every packet was decoded.</p>");
    } else {
        page.push_str("<table class=\"sortable\" id=\"skipped\"><thead><tr><th>reason</th><th class=\"num\">packets</th><th class=\"num\">share</th></tr></thead><tbody>");
        for (reason, n) in skipped {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"num\" data-v=\"{n}\">{}</td><td class=\"num\">{}</td></tr>",
                escape_html(reason.label()),
                count(n),
                percent(n, s.packets_read)
            );
        }
        page.push_str("</tbody></table>");
    }
    if s.packets_cut_by_snaplen > 0 {
        let _ = write!(
            page,
            "<p class=\"note\">{} frames were cut by the snapshot length (decoded from what \
             was captured).</p>",
            count(s.packets_cut_by_snaplen)
        );
    }
    page.push_str("</section>\n");
}

fn hidden_section(page: &mut String, hidden: Option<&HiddenAnalysis>) {
    page.push_str("<section id=\"hidden-section\"><h2>Hidden sessions</h2>");
    match hidden {
        None => page.push_str(
            "<p class=\"na\" id=\"hidden-na\">Hidden-session analysis not available in this \
             version: sessions are not yet told apart as user or technology, and no periodic \
             patterns are searched for. Everything else in this report is complete.</p>",
        ),
        Some(h) => {
            let _ = write!(
                page,
                "<p class=\"note\">{} user sessions, {} technology sessions; {} groups of \
                 hidden sessions{}.</p>",
                count(h.user_sessions),
                count(h.technology_sessions),
                count(h.groups_total as u64),
                if h.groups_total > h.groups.len().min(MAX_HIDDEN_GROUPS) {
                    format!(
                        " (the {} largest shown)",
                        h.groups.len().min(MAX_HIDDEN_GROUPS)
                    )
                } else {
                    String::new()
                }
            );
            page.push_str(
                "<p class=\"note\">A periodic pattern's row plots the intervals between its \
                 session starts in time order, the dashed line at its period.</p>\
                 <div id=\"hidden\"></div>",
            );
        }
    }
    page.push_str("</section>\n");
}

fn tops(page: &mut String, s: &CaptureSummary) {
    page.push_str("<section id=\"tops\"><h2>Top services and talkers</h2><div class=\"cols\">");
    page.push_str("<div><h3>Services by sessions</h3><table class=\"sortable\" id=\"services\"><thead><tr><th>service</th><th class=\"num\">sessions</th><th class=\"num\">IP bytes</th></tr></thead><tbody>");
    for (name, t) in s.top_services_by_sessions(TOP_N) {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{}\">{}</td></tr>",
            escape_html(name),
            t.sessions,
            count(t.sessions),
            t.ip_bytes,
            bytes(t.ip_bytes)
        );
    }
    let unknown = s.sessions_without_service();
    if unknown > 0 {
        let _ = write!(
            page,
            "<tr><td><i>(unknown)</i></td><td class=\"num\" data-v=\"{unknown}\">{}</td><td class=\"num\" data-v=\"-1\">-</td></tr>",
            count(unknown)
        );
    }
    page.push_str("</tbody></table></div>");
    page.push_str("<div><h3>Talkers by IP bytes</h3><table class=\"sortable\" id=\"talkers\"><thead><tr><th>host</th><th class=\"num\">IP bytes</th><th class=\"num\">sessions</th></tr></thead><tbody>");
    for (addr, t) in s.talkers.top(TOP_N) {
        let approx = if t.error > 0 { "~" } else { "" };
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"num\" data-v=\"{}\">{approx}{}</td><td class=\"num\" data-v=\"{}\">{}</td></tr>",
            escape_html(&addr.to_string()),
            t.bytes,
            bytes(t.bytes),
            t.sessions,
            count(t.sessions)
        );
    }
    page.push_str("</tbody></table></div></div></section>\n");
}

fn breakdowns(page: &mut String, s: &CaptureSummary) {
    page.push_str("<section id=\"breakdowns\"><h2>Sessions by protocol, state and end</h2><div class=\"cols\">");
    page.push_str("<div><table class=\"sortable\" id=\"by-proto\"><thead><tr><th>protocol</th><th class=\"num\">sessions</th><th class=\"num\">IP bytes</th></tr></thead><tbody>");
    for (proto, t) in &s.by_proto {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{}\">{}</td></tr>",
            escape_html(proto.as_str()),
            t.sessions,
            count(t.sessions),
            t.ip_bytes,
            bytes(t.ip_bytes)
        );
    }
    page.push_str("</tbody></table></div>");
    page.push_str("<div><table class=\"sortable\" id=\"by-state\"><thead><tr><th>state</th><th>meaning</th><th class=\"num\">sessions</th></tr></thead><tbody>");
    for state in ConnState::ALL {
        let n = s.sessions_in_state(state);
        if n > 0 {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td class=\"num\" data-v=\"{n}\">{}</td></tr>",
                state.as_str(),
                escape_html(state.meaning()),
                count(n)
            );
        }
    }
    page.push_str("</tbody></table></div>");
    page.push_str("<div><table class=\"sortable\" id=\"by-end\"><thead><tr><th>ended</th><th class=\"num\">sessions</th></tr></thead><tbody>");
    for reason in END_REASONS {
        let n = s.sessions_ended_by(reason);
        if n > 0 {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"num\" data-v=\"{n}\">{}</td></tr>",
                reason.as_str(),
                count(n)
            );
        }
    }
    page.push_str("</tbody></table></div></div></section>\n");
}

/// Appends `[a,b,...]` of JSON values already formatted.
fn json_seconds(out: &mut String, nanos: i64) {
    let _ = write!(out, "{}", nanos as f64 / 1e9);
}

/// The data the script draws from, as JSON.
fn data_json(s: &CaptureSummary, data: &ReportData) -> String {
    let mut j = String::with_capacity(256 * 1024);
    let _ = write!(j, "{{\"sessions\":{},\"protocols\":[", s.sessions.sessions);
    for (i, p) in TIMELINE_PROTOCOLS.iter().enumerate() {
        if i > 0 {
            j.push(',');
        }
        push_json_string(&mut j, p);
    }
    let _ = write!(
        j,
        "],\"bucket_seconds\":{},\"timeline\":[",
        data.timeline.bucket_nanos() as f64 / 1e9
    );
    for (i, (start, b)) in data.timeline.buckets().enumerate() {
        if i > 0 {
            j.push(',');
        }
        j.push('[');
        json_seconds(&mut j, start.0);
        for n in b.sessions {
            let _ = write!(j, ",{n}");
        }
        let _ = write!(j, ",{},{},{}]", b.ip_bytes, b.user, b.technology);
    }
    j.push_str("],\"hidden\":");
    match &data.hidden {
        None => j.push_str("null"),
        Some(h) => hidden_json(&mut j, h),
    }
    let sample = data.sample();
    let _ = write!(j, ",\"sample_size\":{},\"rows\":[", sample.len());
    for (i, r) in sample.iter().enumerate() {
        if i > 0 {
            j.push(',');
        }
        j.push('[');
        json_seconds(&mut j, r.start.0);
        j.push(',');
        push_json_string(&mut j, r.uid.as_str());
        j.push(',');
        push_json_string(&mut j, &r.orig_h.to_string());
        let _ = write!(j, ",{},", r.orig_p);
        push_json_string(&mut j, &r.resp_h.to_string());
        let _ = write!(j, ",{},", r.resp_p);
        push_json_string(&mut j, r.proto);
        j.push(',');
        push_json_string(&mut j, r.service);
        let _ = write!(
            j,
            ",{},{},{},{},{},",
            r.duration_nanos as f64 / 1e9,
            r.orig_bytes,
            r.resp_bytes,
            r.pkts,
            r.ip_bytes
        );
        push_json_string(&mut j, r.conn_state);
        j.push(',');
        push_json_string(&mut j, r.history.as_str());
        j.push(',');
        push_json_string(&mut j, r.end_reason);
        j.push(']');
    }
    j.push_str("]}");
    j
}

fn hidden_json(j: &mut String, h: &HiddenAnalysis) {
    let _ = write!(
        j,
        "{{\"user\":{},\"technology\":{},\"groups_total\":{},\"groups\":[",
        h.user_sessions, h.technology_sessions, h.groups_total
    );
    // Already in page order (most sessions first); the script keeps it.
    let mut plots = 0;
    for (i, g) in h.groups.iter().take(MAX_HIDDEN_GROUPS).enumerate() {
        if i > 0 {
            j.push(',');
        }
        j.push('[');
        push_json_string(j, &g.host);
        j.push(',');
        push_json_string(j, g.kind);
        j.push(',');
        push_json_string(j, &g.destination);
        j.push(',');
        push_json_string(j, &g.service);
        j.push(',');
        push_json_string(j, &g.reasons.join("; "));
        let _ = write!(j, ",{},{},", g.sessions, g.ip_bytes);
        json_seconds(j, g.first.0);
        j.push(',');
        json_seconds(j, g.last.0);
        match g.period_secs.filter(|p| p.is_finite()) {
            Some(period) => {
                let _ = write!(j, ",{period},[");
            }
            None => j.push_str(",null,["),
        }
        // At most MAX_PLOTTED_PATTERNS plots of MAX_PATTERN_INTERVALS points: the page's size.
        let finite = g.intervals_secs.iter().filter(|v| v.is_finite());
        let points = if plots < MAX_PLOTTED_PATTERNS && finite.clone().next().is_some() {
            plots += 1;
            MAX_PATTERN_INTERVALS
        } else {
            0
        };
        for (k, v) in finite.take(points).enumerate() {
            if k > 0 {
                j.push(',');
            }
            let _ = write!(j, "{v}");
        }
        let _ = write!(j, "],{}]", g.intervals_total);
    }
    j.push_str("]}");
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>sessionscope report</title>
<style>
:root{--bg:#fff;--fg:#1d232b;--muted:#5b6672;--line:#d9dee4;--card:#f4f6f8;--bad:#b3261e;--tcp:#3465a4;--udp:#e08a1e;--icmp:#4e9a06;--other:#888;--user:#7b3fa0;--tech:#2aa198}
@media (prefers-color-scheme:dark){:root{--bg:#15191e;--fg:#e3e7eb;--muted:#9aa5b1;--line:#333c46;--card:#1e242b;--bad:#ff6b60}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
header{padding:16px 24px;border-bottom:1px solid var(--line)}
h1{margin:0;font-size:22px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:16px 0 6px}
.sub,.note{color:var(--muted);margin:4px 0}
main{padding:0 24px 40px;max-width:1400px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:var(--card);border-radius:8px;padding:10px 14px;min-width:180px;flex:1}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:22px;font-weight:600}.card .detail{color:var(--muted);font-size:12px}
.cols{display:flex;flex-wrap:wrap;gap:24px}.cols>div{flex:1;min-width:280px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td{overflow-wrap:anywhere}td.nowrap{white-space:nowrap}
th{cursor:pointer;user-select:none;white-space:nowrap;background:var(--card)}
th.sorted-asc::after{content:" \25B2"}th.sorted-desc::after{content:" \25BC"}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bad{color:var(--bad)}
.na{border-left:4px solid var(--muted);padding:8px 12px;background:var(--card)}
.controls{display:flex;gap:8px;align-items:center;margin:6px 0;flex-wrap:wrap}
input[type=search]{padding:4px 8px;min-width:260px;background:var(--bg);color:var(--fg);border:1px solid var(--line);border-radius:4px}
button{padding:3px 10px;background:var(--card);color:var(--fg);border:1px solid var(--line);border-radius:4px;cursor:pointer}
button:disabled{opacity:.4;cursor:default}
svg text{fill:var(--muted);font-size:11px}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.plot{display:block;margin-top:2px}.plot polyline{fill:none;stroke:var(--tcp);stroke-width:1.2}
</style>
</head>
<body>
<script>
window.__reportErrors=[];
window.addEventListener("error",function(e){window.__reportErrors.push(String(e.message||e));});
(function(){var o=console.error;console.error=function(){window.__reportErrors.push(Array.prototype.join.call(arguments," "));return o.apply(console,arguments);};})();
</script>
"#;

const SCRIPT: &str = r#"
(function(){
"use strict";
var t0=performance.now();
var D=JSON.parse(document.getElementById("report-data").textContent);
var SVG="http://www.w3.org/2000/svg";
var PROTO_COLORS=["var(--tcp)","var(--udp)","var(--icmp)","var(--other)"];
function el(tag,attrs,text){var e=document.createElement(tag);if(attrs){for(var k in attrs){e.setAttribute(k,attrs[k]);}}if(text!==undefined){e.textContent=String(text);}return e;}
function sv(tag,attrs){var e=document.createElementNS(SVG,tag);for(var k in attrs){e.setAttribute(k,attrs[k]);}return e;}
function pad(n,w){var s=String(n);while(s.length<w){s="0"+s;}return s;}
function utc(secs){var d=new Date(secs*1000);if(isNaN(d.getTime())){return String(secs);}return d.getUTCFullYear()+"-"+pad(d.getUTCMonth()+1,2)+"-"+pad(d.getUTCDate(),2)+" "+pad(d.getUTCHours(),2)+":"+pad(d.getUTCMinutes(),2)+":"+pad(d.getUTCSeconds(),2);}
function num(n){return Number(n).toLocaleString("en-US");}
function bytes(n){var u=["B","KiB","MiB","GiB","TiB","PiB"],i=0;n=Number(n);while(n>=1024&&i<u.length-1){n/=1024;i++;}return (i===0?String(n):n.toFixed(n<10?2:1))+" "+u[i];}
function dur(s){s=Number(s);if(s<60){return s.toFixed(6)+" s";}var m=Math.floor(s/60);if(m<60){return m+"m "+(s-60*m).toFixed(1)+"s";}var h=Math.floor(m/60);return h+"h "+pad(m%60,2)+"m";}
function legend(items){var d=el("div",{"class":"legend"});items.forEach(function(it){var s=el("span");var i=el("i");i.style.background=it[1];s.appendChild(i);s.appendChild(document.createTextNode(it[0]));d.appendChild(s);});return d;}

/* Stacked bars: series[k][i] for bucket i; returns the number of bars drawn and their sessions. */
function bars(host,buckets,series,colors,names,height){
  var W=1000,H=height,L=48,B=22,n=buckets.length,max=1,i,k;
  for(i=0;i<n;i++){var t=0;for(k=0;k<series.length;k++){t+=series[k][i];}if(t>max){max=t;}}
  var svg=sv("svg",{viewBox:"0 0 "+W+" "+H,width:"100%",height:H,role:"img"});
  var first=n?buckets[0][0]:0,last=n?buckets[n-1][0]+D.bucket_seconds:1,span=Math.max(last-first,D.bucket_seconds);
  var bw=Math.max((W-L)*D.bucket_seconds/span,1),drawn=0,total=0;
  for(i=0;i<n;i++){
    var x=L+(buckets[i][0]-first)/span*(W-L),y=H-B,sum=0,tip=utc(buckets[i][0])+" UTC";
    for(k=0;k<series.length;k++){var v=series[k][i];if(!v){continue;}sum+=v;var h=v/max*(H-B-8);y-=h;
      var r=sv("rect",{x:x.toFixed(2),y:y.toFixed(2),width:Math.max(bw-0.5,0.6).toFixed(2),height:h.toFixed(2),fill:colors[k]});svg.appendChild(r);tip+="\n"+names[k]+": "+num(v);}
    if(sum>0){var g=sv("rect",{x:x.toFixed(2),y:8,width:Math.max(bw,1).toFixed(2),height:H-B-8,fill:"transparent","class":"bar","data-sessions":sum});
      var tt=sv("title",{});tt.textContent=tip;g.appendChild(tt);svg.appendChild(g);drawn++;total+=sum;}
  }
  svg.appendChild(sv("line",{x1:L,y1:H-B,x2:W,y2:H-B,stroke:"currentColor","stroke-opacity":"0.3"}));
  var lt=sv("text",{x:L,y:H-6});lt.textContent=utc(first);svg.appendChild(lt);
  var rt=sv("text",{x:W,y:H-6,"text-anchor":"end"});rt.textContent=utc(last);svg.appendChild(rt);
  var mt=sv("text",{x:L-4,y:16,"text-anchor":"end"});mt.textContent=num(max);svg.appendChild(mt);
  host.appendChild(svg);return {bars:drawn,sessions:total};
}

var check={errors:window.__reportErrors};
(function timeline(){
  var tl=D.timeline,series=[[],[],[],[]];
  tl.forEach(function(b){for(var k=0;k<4;k++){series[k].push(b[k+1]);}});
  var host=document.getElementById("timeline");
  document.getElementById("timeline-note").textContent=tl.length?("Session starts per "+dur(D.bucket_seconds).replace(/\.0+ s$/," s")+", by protocol. Hover a bar for its counts."):"No sessions.";
  host.appendChild(legend([["tcp",PROTO_COLORS[0]],["udp",PROTO_COLORS[1]],["icmp",PROTO_COLORS[2]],["other",PROTO_COLORS[3]]]));
  var r=bars(host,tl,series,PROTO_COLORS,D.protocols,170);
  check.timeline_bars=r.bars;check.timeline_sessions=r.sessions;
  var ch=document.getElementById("timeline-classes");
  if(D.hidden){
    ch.appendChild(el("h3",null,"User and technology sessions"));
    ch.appendChild(legend([["user","var(--user)"],["technology","var(--tech)"]]));
    var u=[],t=[];tl.forEach(function(b){u.push(b[6]);t.push(b[7]);});
    bars(ch,tl,[u,t],["var(--user)","var(--tech)"],["user","technology"],120);
  }else{
    ch.appendChild(el("p",{"class":"note"},"User and technology sessions are told apart once the hidden-session analysis is available."));
  }
})();

/* A table over rows (arrays) with sorting, a text filter and pages. */
function table(host,cols,rows,pageSize,id){
  var state={key:-1,dir:1,filter:"",page:0,view:rows.slice()};
  var controls=el("div",{"class":"controls"});
  var input=el("input",{type:"search",placeholder:"Filter (any column; several words must all match)","aria-label":"filter"});
  var prev=el("button",null,"\u2190 previous"),next=el("button",null,"next \u2192"),info=el("span",{"class":"note"});
  controls.appendChild(input);controls.appendChild(prev);controls.appendChild(next);controls.appendChild(info);
  var t=el("table",{id:id}),thead=el("thead"),tr=el("tr"),tbody=el("tbody");
  cols.forEach(function(c,i){var th=el("th",c.num?{"class":"num"}:null,c.name);th.addEventListener("click",function(){if(state.key===i){state.dir=-state.dir;}else{state.key=i;state.dir=c.num?-1:1;}sort();draw();});tr.appendChild(th);});
  thead.appendChild(tr);t.appendChild(thead);t.appendChild(tbody);host.appendChild(controls);host.appendChild(t);
  var text=rows.map(function(r){return cols.map(function(c,i){return c.fmt?c.fmt(r[i]):String(r[i]);}).join(" \u0001 ").toLowerCase();});
  function apply(){var words=state.filter.toLowerCase().split(/\s+/).filter(Boolean);state.view=[];for(var i=0;i<rows.length;i++){var ok=true;for(var w=0;w<words.length;w++){if(text[i].indexOf(words[w])<0){ok=false;break;}}if(ok){state.view.push(i);}}state.page=0;sort();}
  function sort(){if(state.key<0){return;}var k=state.key,d=state.dir;state.view.sort(function(a,b){var x=rows[a][k],y=rows[b][k];return (x<y?-1:x>y?1:a-b)*d;});
    Array.prototype.forEach.call(tr.children,function(th,i){th.className=(cols[i].num?"num ":"")+(i===k?(d>0?"sorted-asc":"sorted-desc"):"");});}
  function draw(){while(tbody.firstChild){tbody.removeChild(tbody.firstChild);}
    var pages=Math.max(1,Math.ceil(state.view.length/pageSize));if(state.page>=pages){state.page=pages-1;}
    var from=state.page*pageSize,to=Math.min(state.view.length,from+pageSize);
    for(var i=from;i<to;i++){var r=rows[state.view[i]],row=el("tr");cols.forEach(function(c,k){var td=el("td",c.num?{"class":"num"}:c.nowrap?{"class":"nowrap"}:null,c.fmt?c.fmt(r[k]):r[k]);if(c.node){c.node(td,r);}row.appendChild(td);});tbody.appendChild(row);}
    info.textContent=state.view.length?("rows "+num(from+1)+"\u2013"+num(to)+" of "+num(state.view.length)+(state.view.length<rows.length?" (filtered from "+num(rows.length)+")":"")):"no rows match";
    prev.disabled=state.page===0;next.disabled=state.page>=pages-1;}
  input.addEventListener("input",function(){state.filter=input.value;apply();draw();});
  prev.addEventListener("click",function(){state.page--;draw();});next.addEventListener("click",function(){state.page++;draw();});
  state.view=rows.map(function(_,i){return i;});draw();return tbody;
}

function secs(s){s=Number(s);return s<60?s.toFixed(s<10?2:1)+" s":dur(s);}
/* A periodic pattern's intervals (seconds, time order) as a small plot, the period dashed. */
function intervalPlot(period,iv,total){
  var W=220,Hh=44,P=3,max=0;iv.forEach(function(v){if(v>max){max=v;}});
  max=Math.max(period*2,Math.min(max,period*4),1e-6);
  function y(v){return (Hh-P-Math.min(v/max,1)*(Hh-2*P)).toFixed(1);}
  var svg=sv("svg",{viewBox:"0 0 "+W+" "+Hh,width:W,height:Hh,"class":"plot",role:"img"});
  svg.appendChild(sv("line",{x1:0,x2:W,y1:y(period),y2:y(period),stroke:"var(--tech)","stroke-dasharray":"3 3"}));
  var pts=iv.map(function(v,i){return (iv.length>1?P+i/(iv.length-1)*(W-2*P):W/2).toFixed(1)+","+y(v);});
  svg.appendChild(sv("polyline",{points:pts.join(" ")}));
  iv.forEach(function(v,i){if(iv.length<=60){var c=pts[i].split(",");svg.appendChild(sv("circle",{cx:c[0],cy:c[1],r:1.6,fill:"var(--tcp)"}));}});
  var tt=sv("title",{});tt.textContent="Intervals between session starts, in time order: "+(iv.length<total?iv.length+" of "+num(total)+" (each the one farthest from the period in its slice)":num(iv.length))+". Dashed: the period, "+secs(period)+". Top edge: "+secs(max)+" or more.";
  svg.appendChild(tt);return svg;
}

(function hidden(){
  if(!D.hidden){check.hidden="unavailable";check.hidden_rows=0;return;}
  var H=D.hidden;
  function every(p){return p===null||p===undefined?"":"every "+secs(p);}
  function plot(td,r){if(r[9]!==null&&r[10].length){td.appendChild(intervalPlot(r[9],r[10],r[11]));}}
  var body=table(document.getElementById("hidden"),[{name:"host",nowrap:true},{name:"kind",nowrap:true},{name:"destination"},{name:"service"},{name:"reasons"},{name:"sessions",num:true,fmt:num},{name:"bytes",num:true,fmt:bytes},{name:"first (UTC)",fmt:utc},{name:"last (UTC)",fmt:utc},{name:"period and intervals",fmt:every,node:plot}],H.groups,50,"hidden-table");
  check.hidden="available";check.hidden_rows=H.groups.length;check.hidden_rows_shown=body.children.length;
  check.hidden_plots=H.groups.filter(function(g){return g[10].length>0;}).length;
  check.hidden_plots_shown=body.querySelectorAll("tr svg.plot").length;
})();

(function sessions(){
  var note=document.getElementById("sessions-note");
  note.textContent=D.rows.length<D.sessions?("A sample of "+num(D.rows.length)+" of the "+num(D.sessions)+" sessions (the same sessions every run). sessions.csv has them all."):("All "+num(D.rows.length)+" sessions.");
  var body=table(document.getElementById("sessions"),[{name:"start (UTC)",fmt:utc},{name:"uid"},{name:"orig_h"},{name:"orig_p",num:true},{name:"resp_h"},{name:"resp_p",num:true},{name:"proto"},{name:"service"},{name:"duration",num:true,fmt:dur},{name:"orig_bytes",num:true,fmt:num},{name:"resp_bytes",num:true,fmt:num},{name:"pkts",num:true,fmt:num},{name:"IP bytes",num:true,fmt:bytes},{name:"state"},{name:"history"},{name:"ended"}],D.rows,50,"sessions-table");
  check.sample_rows=D.rows.length;check.sample_rows_shown=body.children.length;
})();

/* Static tables: click a header to sort (numbers by their data-v). */
Array.prototype.forEach.call(document.querySelectorAll("table.sortable"),function(t){
  var ths=t.tHead.rows[0].cells;Array.prototype.forEach.call(ths,function(th,i){var dir=1;th.addEventListener("click",function(){
    var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);dir=-dir;
    rows.sort(function(a,b){var x=a.cells[i],y=b.cells[i];var vx=x.getAttribute("data-v"),vy=y.getAttribute("data-v");
      if(vx!==null&&vy!==null){return (Number(vx)-Number(vy))*dir;}return x.textContent.localeCompare(y.textContent)*dir;});
    rows.forEach(function(r){body.appendChild(r);});});});});

check.render_ms=Math.round(performance.now()-t0);
var out=document.getElementById("selfcheck");
function write(){out.setAttribute("data-status",check.errors.length?"errors":"ok");out.textContent=JSON.stringify(check);}
write();
window.addEventListener("error",function(){setTimeout(write,0);});
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::HiddenGroup;
    use crate::report::data::tests::record;
    use crate::session::Proto;

    fn hostile() -> &'static str {
        "x\"'><script>alert(1)</script>\n&amp;</script ><!--\u{2028}"
    }

    #[test]
    fn escapes_html_text() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn hostile_values_never_become_markup() {
        let mut summary = CaptureSummary::new();
        // A file name with markup and what lossy decoding makes of invalid UTF-8.
        let name = format!(
            "{}{}",
            hostile(),
            String::from_utf8_lossy(b"caf\xc3(\xff\xfe.pcap")
        );
        summary.on_file_start(&name);
        summary.on_file_end(0, Some(format!("cut at byte 9 {}", hostile())));
        let mut data = ReportData::new();
        let mut r = record(1, 1_700_000_000, Proto::Tcp);
        r.service = Some("ht<tp\"></script><script>alert(2)</script>");
        summary.on_session(&r);
        data.on_session(&r);
        let group = HiddenGroup {
            host: hostile().into(),
            kind: "beacon",
            destination: "</script>".into(),
            service: "dns".into(),
            reasons: vec![hostile().into()],
            sessions: 3,
            ip_bytes: 10,
            first: r.start,
            last: r.last,
            period_secs: None,
            intervals_secs: Vec::new(),
            intervals_total: 0,
        };
        data.hidden = Some(HiddenAnalysis {
            user_sessions: 1,
            technology_sessions: 0,
            groups_total: 2,
            groups: vec![
                group.clone(),
                HiddenGroup {
                    period_secs: Some(f64::NAN),
                    intervals_secs: vec![60.0, f64::INFINITY, 61.5],
                    intervals_total: 3,
                    ..group
                },
            ],
        });
        let page = render(&summary, &data);
        // The only script elements are ours: two scripts and the JSON block.
        assert_eq!(page.matches("<script").count(), 3, "{page}");
        assert_eq!(page.matches("</script>").count(), 3);
        assert!(!page.contains("alert(1)</"));
        assert!(!page.contains("<!--"));
        // The file name is shown escaped, with the replacement character for bad bytes.
        assert!(page.contains("x&quot;&#39;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("caf\u{fffd}(\u{fffd}\u{fffd}.pcap"));
        // Newlines from inputs do not survive in the HTML text (clean replaces controls).
        assert!(page.contains("&lt;/script&gt;?&amp;amp;"));
        // The JSON block still parses back to the original strings.
        let start = page.find("id=\"report-data\">").unwrap() + "id=\"report-data\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let json = &page[start..end];
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'));
        assert!(json.contains("ht\\u003ctp\\\"\\u003e\\u003c/script\\u003e"));
        // No period, or one JSON cannot hold: null; intervals JSON cannot hold are left out.
        assert!(json.contains(",null,[],0]"));
        assert!(json.contains(",null,[60,61.5],3]"));
    }

    #[test]
    fn without_hidden_analysis_the_page_says_so() {
        let mut summary = CaptureSummary::new();
        let mut data = ReportData::new();
        for i in 0..10 {
            let r = record(i, 1_700_000_000 + i as i64 * 7, Proto::Udp);
            summary.on_session(&r);
            data.on_session(&r);
        }
        let page = render(&summary, &data);
        assert!(page.contains("Hidden-session analysis not available in this version"));
        assert!(page.contains("\"hidden\":null"));
        assert!(page.contains("\"sessions\":10,"));
        assert!(page.contains("\"sample_size\":10,"));
        // Nothing is loaded from anywhere.
        for external in ["http://", "https://", "src=", "@import", "url("] {
            let outside_svg_ns = page.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside_svg_ns.contains(external), "{external}");
        }
    }

    #[test]
    fn many_sessions_give_a_bounded_page() {
        let mut summary = CaptureSummary::new();
        let mut data = ReportData::new();
        for i in 0..200_000u64 {
            let r = record(i, 1_700_000_000 + (i as i64) / 3, Proto::Tcp);
            summary.on_session(&r);
            data.on_session(&r);
        }
        let page = render(&summary, &data);
        assert!(page.len() < 1_500_000, "{}", page.len());
        assert!(page.contains("\"sample_size\":2000,"));
    }

    #[test]
    fn many_periodic_patterns_give_a_bounded_page() {
        let summary = CaptureSummary::new();
        let mut data = ReportData::new();
        let group = |i: u64| HiddenGroup {
            host: format!("10.0.{}.{}", i / 256, i % 256),
            kind: "beacon",
            destination: "c2.example.test (2001:db8::1) tcp/443".into(),
            service: "http".into(),
            reasons: vec!["periodic: 4096 sessions every 30.1 s, jitter 3%".into()],
            sessions: 4096,
            ip_bytes: 1 << 20,
            first: crate::capture::Timestamp::from_micros(1_700_000_000_000_000),
            last: crate::capture::Timestamp::from_micros(1_700_123_456_000_000),
            period_secs: Some(30.123),
            intervals_secs: (0..250).map(|k| 29.5 + f64::from(k) * 0.007).collect(),
            intervals_total: 4095,
        };
        data.hidden = Some(HiddenAnalysis {
            user_sessions: 0,
            technology_sessions: 5_000_000,
            groups_total: 5_000,
            groups: (0..5_000).map(group).collect(),
        });
        let page = render(&summary, &data);
        let plots = page.matches(",30.123,[2").count();
        assert_eq!(plots, MAX_PLOTTED_PATTERNS);
        assert_eq!(page.matches(",30.123,[],4095]").count(), 1_000 - plots);
        // 1,000 rows and 200 plots of 200 points: well under the 1 MB the big check allows.
        assert!(page.len() < 600_000, "{}", page.len());
    }
}
