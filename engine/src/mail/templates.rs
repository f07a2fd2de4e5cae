//! The mail templates: built-in [minijinja](https://docs.rs/minijinja) templates, each
//! replaceable by a file of the same name in an operator's directory
//! ([`MailConfig::templates_dir`](super::MailConfig::templates_dir)).
//!
//! # Names
//!
//! Every mail is rendered from three templates named `{kind}.{lang}.{part}`:
//!
//! - `kind`: `confirmation` (a coupon was issued), `reminder` (an issued coupon expires
//!   soon) or `new_campaign` (a campaign of a store the user subscribes to started);
//! - `lang`: `en` or `ko`. A job's locale (`ko`, `ko-KR`, `EN`, …) picks Korean when its
//!   primary subtag is `ko`, English otherwise (and when the user has no locale);
//! - `part`: `subject.txt` (the Subject header: rendered, then trimmed, and its lines
//!   joined with single spaces, since a header is one line), `body.txt` (the plain-text
//!   body) and `body.html` (the HTML body).
//!
//! So there are 18 templates, e.g. `confirmation.ko.body.html`; the built-in ones are in
//! `engine/templates/` of the source tree, a good start for an override. An override
//! directory may hold any subset of them; the others stay built-in. Other files there
//! are ignored, with a warning naming them. An override that does not parse stops the
//! mailer from starting.
//!
//! # Syntax and escaping
//!
//! Templates are Jinja2 as implemented by minijinja, with `trim_blocks` and
//! `lstrip_blocks` on (a line holding only a `{% ... %}` tag leaves no blank line) and
//! the file's final newline kept. Values in `.html` templates are HTML-escaped; values in
//! `.txt` templates are not.
//!
//! Undefined values are semi-strict: printing one, or looking up an attribute of one, is
//! an error (a misspelt name fails the mail, which goes to the dead letters, rather than
//! going out with a hole in it), while testing one with `{% if %}` is allowed and false.
//! `none` prints as `none`, so guard optional values with `{% if %}`.
//!
//! # Context
//!
//! Times are strings in UTC to the minute, like `2026-11-23 14:00 UTC`. Amounts are
//! integers in the currency's smallest unit the campaign was created with.
//!
//! | Variable | Value |
//! |---|---|
//! | `lang` | `"en"` or `"ko"`: the language being rendered |
//! | `user_id` | the recipient's user id |
//! | `campaign.id` | the campaign id |
//! | `campaign.name` | the campaign's name |
//! | `campaign.store_id` | the store id, or none |
//! | `campaign.starts_at` | when the campaign starts, or none |
//! | `campaign.ends_at` | when the campaign ends, or none |
//! | `coupon` | the coupon (`confirmation` and `reminder`); undefined for `new_campaign` |
//! | `coupon.id` | the coupon id |
//! | `coupon.code` | the code the user enters, like `3B3P-GT0Y-EEBG-FG` |
//! | `coupon.issued_at` | when it was issued |
//! | `coupon.expires_at` | when it expires, or none if it never does |
//! | `discount` | the campaign's discount, or none |
//! | `discount.kind` | `"fixed"` or `"percent"` |
//! | `discount.value` | the amount off (`fixed`) or the percentage (`percent`) |
//! | `discount.min_order_amount` | the smallest order it applies to, or none |
//! | `discount.max_discount_amount` | the most it takes off, or none |
//! | `discount.text` | a description in the mail's language: `10% off (up to 5,000)`, `3,000원 할인 (20,000원 이상 주문 시)` |
//!
//! The campaign is described as it was when the job was queued, not as it is when the
//! mail is sent.

use std::path::Path;

use firstcome_storage::{Discount, DiscountKind, MailCampaign, MailCoupon};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::{MailError, MailJob, MailKind};

/// Includes the built-in templates, by name.
macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

/// The built-in templates: every template name, and its source.
const BUILTIN: &[(&str, &str)] = builtin![
    "confirmation.en.subject.txt",
    "confirmation.en.body.txt",
    "confirmation.en.body.html",
    "confirmation.ko.subject.txt",
    "confirmation.ko.body.txt",
    "confirmation.ko.body.html",
    "reminder.en.subject.txt",
    "reminder.en.body.txt",
    "reminder.en.body.html",
    "reminder.ko.subject.txt",
    "reminder.ko.body.txt",
    "reminder.ko.body.html",
    "new_campaign.en.subject.txt",
    "new_campaign.en.body.txt",
    "new_campaign.en.body.html",
    "new_campaign.ko.subject.txt",
    "new_campaign.ko.body.txt",
    "new_campaign.ko.body.html",
];

/// The mail templates, ready to render. Cheap to share: rendering takes `&self`.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

/// A rendered mail: a one-line subject and its two bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Templates {
    /// Built-in templates, overridden by any file of the same name in `overrides`.
    ///
    /// Fails ([`MailError::Template`]) if an override does not parse or cannot be read,
    /// or `overrides` is given but is not a readable directory. Files in the directory
    /// that are not template names are ignored, with a warning naming them.
    pub fn load(overrides: Option<&Path>) -> Result<Templates, MailError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| template_error("syntax", &e))?;
        env.set_syntax(syntax);
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        for (name, source) in BUILTIN {
            env.add_template(name, source)
                .map_err(|e| template_error(name, &e))?;
        }
        if let Some(dir) = overrides {
            load_overrides(&mut env, dir)?;
        }
        Ok(Templates { env })
    }

    /// Renders the job's subject, plain-text and HTML bodies in the job's language.
    pub fn render(&self, job: &MailJob) -> Result<RenderedMail, MailError> {
        let lang = Lang::of(job.locale.as_deref());
        let ctx = Value::from(Serde(Context::of(job, lang)?));
        let part = |part: &str| {
            let name = format!("{}.{}.{part}", job.kind.as_str(), lang.as_str());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(ctx.clone()))
                .map_err(|e| template_error(&name, &e))
        };
        Ok(RenderedMail {
            subject: one_line(&part("subject.txt")?),
            text: part("body.txt")?,
            html: part("body.html")?,
        })
    }
}

fn template_error(name: &str, e: &dyn std::fmt::Display) -> MailError {
    MailError::Template {
        name: name.to_string(),
        detail: e.to_string(),
    }
}

/// Replaces built-in templates with the files of the same name in `dir`.
fn load_overrides(env: &mut Environment<'static>, dir: &Path) -> Result<(), MailError> {
    let dir_error = |e: std::io::Error| template_error(&dir.display().to_string(), &e);
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_error)? {
        paths.push(entry.map_err(dir_error)?.path());
    }
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str());
        let Some(&(name, _)) = name.and_then(|n| BUILTIN.iter().find(|(b, _)| *b == n)) else {
            tracing::warn!(
                file = %path.display(),
                "ignoring a file in the mail templates directory: not a template name"
            );
            continue;
        };
        let file_error = |e: &dyn std::fmt::Display| template_error(&path.display().to_string(), e);
        let source = std::fs::read_to_string(&path).map_err(|e| file_error(&e))?;
        env.add_template_owned(name, source)
            .map_err(|e| file_error(&e))?;
        tracing::info!(template = name, file = %path.display(), "mail template overridden");
    }
    Ok(())
}

/// The subject as one header line: trimmed, its lines joined with single spaces.
fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The languages there are templates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Ko,
}

impl Lang {
    /// The language of a locale tag (`ko`, `ko-KR`, `ko_KR`, `EN`): Korean for `ko`,
    /// English for anything else or none.
    fn of(locale: Option<&str>) -> Lang {
        let primary = locale
            .and_then(|l| l.trim().split(['-', '_']).next())
            .unwrap_or("");
        if primary.eq_ignore_ascii_case("ko") {
            Lang::Ko
        } else {
            Lang::En
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }
}

/// What the templates see (documented in the module docs).
#[derive(Serialize)]
struct Context<'a> {
    lang: &'static str,
    user_id: &'a str,
    campaign: CampaignCtx<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coupon: Option<CouponCtx<'a>>,
    discount: Option<DiscountCtx>,
}

#[derive(Serialize)]
struct CampaignCtx<'a> {
    id: &'a str,
    name: &'a str,
    store_id: Option<&'a str>,
    starts_at: Option<String>,
    ends_at: Option<String>,
}

#[derive(Serialize)]
struct CouponCtx<'a> {
    id: &'a str,
    code: &'a str,
    issued_at: String,
    expires_at: Option<String>,
}

#[derive(Serialize)]
struct DiscountCtx {
    kind: &'static str,
    value: u64,
    min_order_amount: Option<u64>,
    max_discount_amount: Option<u64>,
    text: String,
}

impl<'a> Context<'a> {
    fn of(job: &'a MailJob, lang: Lang) -> Result<Context<'a>, MailError> {
        let time = |micros: i64| format_time(micros).map_err(|e| job_error(job, &e));
        let opt_time = |micros: Option<i64>| micros.map(time).transpose();
        let MailCampaign {
            id,
            name,
            store_id,
            discount,
            starts_at,
            ends_at,
        } = &job.campaign;
        let campaign = CampaignCtx {
            id,
            name,
            store_id: store_id.as_deref(),
            starts_at: opt_time(*starts_at)?,
            ends_at: opt_time(*ends_at)?,
        };
        let coupon = match (&job.coupon, job.kind) {
            (_, MailKind::NewCampaign) | (None, _) => None,
            (
                Some(MailCoupon {
                    id,
                    code,
                    issued_at,
                    expires_at,
                }),
                _,
            ) => Some(CouponCtx {
                id,
                code,
                issued_at: time(*issued_at)?,
                expires_at: opt_time(*expires_at)?,
            }),
        };
        Ok(Context {
            lang: lang.as_str(),
            user_id: &job.user_id,
            campaign,
            coupon,
            discount: discount.as_ref().map(|d| DiscountCtx {
                kind: match d.kind {
                    DiscountKind::Fixed => "fixed",
                    DiscountKind::Percent => "percent",
                },
                value: d.value,
                min_order_amount: d.min_order_amount,
                max_discount_amount: d.max_discount_amount,
                text: discount_text(d, lang),
            }),
        })
    }
}

fn job_error(job: &MailJob, e: &dyn std::fmt::Display) -> MailError {
    MailError::Template {
        name: job.kind.as_str().to_string(),
        detail: format!("job {}: {e}", job.id),
    }
}

/// `2026-11-23 14:00 UTC`.
fn format_time(micros: i64) -> Result<String, jiff::Error> {
    let t = jiff::Timestamp::from_microsecond(micros)?;
    Ok(t.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

/// A human description of a discount in `lang`.
fn discount_text(d: &Discount, lang: Lang) -> String {
    let (amount, max) = match d.kind {
        DiscountKind::Percent => (format!("{}%", d.value), d.max_discount_amount),
        // A cap on a fixed amount is just a smaller fixed amount.
        DiscountKind::Fixed => {
            let value = d.max_discount_amount.map_or(d.value, |m| d.value.min(m));
            let amount = match lang {
                Lang::En => thousands(value),
                Lang::Ko => format!("{}원", thousands(value)),
            };
            (amount, None)
        }
    };
    let mut conditions = Vec::new();
    match lang {
        Lang::En => {
            if let Some(m) = max {
                conditions.push(format!("up to {}", thousands(m)));
            }
            if let Some(m) = d.min_order_amount {
                conditions.push(format!("orders of {} or more", thousands(m)));
            }
        }
        Lang::Ko => {
            if let Some(m) = max {
                conditions.push(format!("최대 {}원", thousands(m)));
            }
            if let Some(m) = d.min_order_amount {
                conditions.push(format!("{}원 이상 주문 시", thousands(m)));
            }
        }
    }
    let (off, sep) = match lang {
        Lang::En => ("off", "; "),
        Lang::Ko => ("할인", ", "),
    };
    if conditions.is_empty() {
        format!("{amount} {off}")
    } else {
        format!("{amount} {off} ({})", conditions.join(sep))
    }
}

/// `1234567` -> `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_microsecond()
    }

    fn job(kind: MailKind, locale: Option<&str>) -> MailJob {
        let coupon = (kind != MailKind::NewCampaign).then(|| MailCoupon {
            id: "nvr1f36qzhbcpsg5-0".into(),
            code: "3B3P-GT0Y-EEBG-FG".into(),
            issued_at: at("2026-11-22T03:19:09.778132Z"),
            expires_at: Some(at("2026-11-23T14:00:30Z")),
        });
        MailJob {
            id: format!("{}.nvr1f36qzhbcpsg5-0", kind.as_str()),
            kind,
            user_id: "alice".into(),
            to: "alice@example.com".into(),
            locale: locale.map(str::to_string),
            campaign: MailCampaign {
                id: "nvr1f36qzhbcpsg5".into(),
                name: "Black Friday".into(),
                store_id: Some("acme".into()),
                discount: Some(Discount {
                    kind: DiscountKind::Percent,
                    value: 10,
                    min_order_amount: None,
                    max_discount_amount: Some(5000),
                }),
                starts_at: Some(at("2026-11-27T00:00:00Z")),
                ends_at: None,
            },
            coupon,
            created_at: 0,
            attempts: 0,
            due_at: 0,
            last_error: None,
            dead_at: None,
        }
    }

    fn builtin() -> Templates {
        Templates::load(None).unwrap()
    }

    const KINDS: [MailKind; 3] = [
        MailKind::Confirmation,
        MailKind::Reminder,
        MailKind::NewCampaign,
    ];

    #[test]
    fn the_builtin_templates_are_exactly_every_name() {
        let mut expected = Vec::new();
        for kind in KINDS {
            for lang in ["en", "ko"] {
                for part in ["subject.txt", "body.txt", "body.html"] {
                    expected.push(format!("{}.{lang}.{part}", kind.as_str()));
                }
            }
        }
        let names: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, expected);
    }

    fn assert_contains_all(what: &str, rendered: &str, needles: &[&str]) {
        for n in needles {
            assert!(rendered.contains(n), "{what} lacks {n:?}:\n{rendered}");
        }
    }

    #[test]
    fn every_kind_renders_in_english_and_korean() {
        let t = builtin();
        let expiry = "2026-11-23 14:00 UTC";
        for kind in KINDS {
            for (locale, discount) in [
                (Some("en"), "10% off (up to 5,000)"),
                (Some("ko"), "10% 할인 (최대 5,000원)"),
            ] {
                let job = job(kind, locale);
                let m = t.render(&job).unwrap();
                let what = format!("{} {locale:?}", kind.as_str());
                assert!(!m.subject.is_empty() && !m.subject.contains('\n'), "{what}");
                let mut needles = vec!["Black Friday", discount];
                match kind {
                    MailKind::NewCampaign => needles.extend(["acme", "2026-11-27 00:00 UTC"]),
                    _ => needles.extend(["3B3P-GT0Y-EEBG-FG", expiry]),
                }
                assert_contains_all(&format!("{what} text"), &m.text, &needles);
                assert_contains_all(&format!("{what} html"), &m.html, &needles);
                assert!(m.html.starts_with("<!DOCTYPE html>"), "{what}");
                assert!(!m.html.contains("http"), "{what}: no external resources");
                assert!(!m.text.contains("none"), "{what}: {}", m.text);
                assert!(!m.text.contains("\n\n\n"), "{what}: {}", m.text);
            }
        }
    }

    #[test]
    fn subjects_say_what_they_are_about() {
        let t = builtin();
        let subject = |kind, locale| t.render(&job(kind, locale)).unwrap().subject;
        assert_eq!(
            subject(MailKind::Confirmation, Some("en")),
            "Your coupon for Black Friday"
        );
        assert_eq!(
            subject(MailKind::Confirmation, Some("ko")),
            "Black Friday 쿠폰이 발급되었습니다"
        );
        assert_eq!(
            subject(MailKind::Reminder, Some("en")),
            "Your coupon expires 2026-11-23 14:00 UTC"
        );
        assert!(subject(MailKind::Reminder, Some("ko")).contains("쿠폰이 곧 만료됩니다"));
        assert_eq!(
            subject(MailKind::NewCampaign, None),
            "New from acme: Black Friday"
        );
        assert!(subject(MailKind::NewCampaign, Some("ko")).contains("새 쿠폰 이벤트"));
    }

    #[test]
    fn optional_values_are_left_out_not_printed_as_none() {
        let t = builtin();
        for kind in KINDS {
            for locale in ["en", "ko"] {
                let mut job = job(kind, Some(locale));
                job.campaign.discount = None;
                job.campaign.store_id = None;
                job.campaign.starts_at = None;
                if let Some(c) = &mut job.coupon {
                    c.expires_at = None;
                }
                let m = t.render(&job).unwrap();
                for part in [&m.subject, &m.text, &m.html] {
                    assert!(!part.contains("none"), "{part}");
                    assert!(part.contains("Black Friday"), "{part}");
                }
            }
        }
        let m = t.render(&{
            let mut j = job(MailKind::Confirmation, None);
            j.coupon.as_mut().unwrap().expires_at = None;
            j
        });
        assert!(m.unwrap().text.contains("does not expire"));
    }

    #[test]
    fn html_is_escaped_and_text_is_verbatim() {
        let t = builtin();
        for kind in KINDS {
            let mut job = job(kind, None);
            job.campaign.name = "<b>Tom & Jerry</b>".into();
            let m = t.render(&job).unwrap();
            assert!(m.text.contains("<b>Tom & Jerry</b>"), "{}", m.text);
            assert!(
                m.html.contains("&lt;b&gt;Tom &amp; Jerry&lt;&#x2f;b&gt;"),
                "{}",
                m.html
            );
            assert!(!m.html.contains("<b>Tom"), "{}", m.html);
            if kind != MailKind::Reminder {
                assert!(m.subject.contains("<b>Tom & Jerry</b>"), "{}", m.subject);
            }
        }
    }

    #[test]
    fn the_locale_picks_the_language() {
        assert_eq!(Lang::of(Some("ko")), Lang::Ko);
        assert_eq!(Lang::of(Some("ko-KR")), Lang::Ko);
        assert_eq!(Lang::of(Some("KO_kr")), Lang::Ko);
        assert_eq!(Lang::of(Some("EN")), Lang::En);
        assert_eq!(Lang::of(Some("en-US")), Lang::En);
        assert_eq!(Lang::of(Some("fr")), Lang::En);
        assert_eq!(Lang::of(Some("kok")), Lang::En);
        assert_eq!(Lang::of(Some("")), Lang::En);
        assert_eq!(Lang::of(None), Lang::En);

        let t = builtin();
        let ko = t
            .render(&job(MailKind::Confirmation, Some("ko-KR")))
            .unwrap();
        assert_eq!(ko.subject, "Black Friday 쿠폰이 발급되었습니다");
        assert!(ko.html.contains("lang=\"ko\""));
        let fr = t.render(&job(MailKind::Confirmation, Some("fr"))).unwrap();
        assert_eq!(fr.subject, "Your coupon for Black Friday");
        assert!(fr.text.contains("10% off"));
    }

    #[test]
    fn discounts_are_described_with_thousands_separators() {
        let d = |kind, value, min, max| Discount {
            kind,
            value,
            min_order_amount: min,
            max_discount_amount: max,
        };
        let cases = [
            (
                d(DiscountKind::Percent, 10, None, Some(5000)),
                "10% off (up to 5,000)",
                "10% 할인 (최대 5,000원)",
            ),
            (
                d(DiscountKind::Fixed, 3000, Some(20000), None),
                "3,000 off (orders of 20,000 or more)",
                "3,000원 할인 (20,000원 이상 주문 시)",
            ),
            (
                d(DiscountKind::Percent, 15, Some(1_000_000), Some(50_000)),
                "15% off (up to 50,000; orders of 1,000,000 or more)",
                "15% 할인 (최대 50,000원, 1,000,000원 이상 주문 시)",
            ),
            (
                d(DiscountKind::Fixed, 500, None, None),
                "500 off",
                "500원 할인",
            ),
            (
                d(DiscountKind::Fixed, 5000, None, Some(2000)),
                "2,000 off",
                "2,000원 할인",
            ),
        ];
        for (discount, en, ko) in cases {
            assert_eq!(discount_text(&discount, Lang::En), en);
            assert_eq!(discount_text(&discount, Lang::Ko), ko);
        }
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(123_456_789), "123,456,789");
    }

    #[test]
    fn an_override_replaces_one_template_and_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("confirmation.en.body.txt"),
            "Code {{ coupon.code }} for {{ user_id }} ({{ discount.kind }})\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a template {{").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let m = t.render(&job(MailKind::Confirmation, None)).unwrap();
        assert_eq!(m.text, "Code 3B3P-GT0Y-EEBG-FG for alice (percent)\n");
        assert_eq!(m.subject, "Your coupon for Black Friday");
        assert_eq!(
            m.html,
            builtin()
                .render(&job(MailKind::Confirmation, None))
                .unwrap()
                .html
        );
        let ko = t.render(&job(MailKind::Confirmation, Some("ko"))).unwrap();
        assert!(ko.text.contains("쿠폰 코드"));
    }

    #[test]
    fn a_broken_override_fails_to_load_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("reminder.ko.body.html"), "{{ unclosed").unwrap();
        match Templates::load(Some(dir.path())) {
            Err(MailError::Template { name, detail }) => {
                assert!(name.ends_with("reminder.ko.body.html"), "{name}");
                assert!(!detail.is_empty());
            }
            other => panic!("expected a template error, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_override_dir_fails_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            Templates::load(Some(&missing)),
            Err(MailError::Template { .. })
        ));
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            Templates::load(Some(&file)),
            Err(MailError::Template { .. })
        ));
    }

    #[test]
    fn a_subject_with_newlines_renders_as_one_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("confirmation.en.subject.txt"),
            "\n  Your coupon\n\nfor {{ campaign.name }}  \r\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let m = t.render(&job(MailKind::Confirmation, None)).unwrap();
        assert_eq!(m.subject, "Your coupon for Black Friday");
        let mut j = job(MailKind::Confirmation, None);
        j.campaign.name = "Black\nFriday".into();
        assert_eq!(
            t.render(&j).unwrap().subject,
            "Your coupon for Black Friday"
        );
    }

    #[test]
    fn an_undefined_value_in_an_override_fails_the_render() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("new_campaign.en.body.txt"),
            "{{ coupon.code }}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        match t.render(&job(MailKind::NewCampaign, None)) {
            Err(e @ MailError::Template { .. }) => {
                assert!(e.is_permanent());
                assert!(e.to_string().contains("new_campaign.en.body.txt"), "{e}");
            }
            other => panic!("expected a template error, got {other:?}"),
        }
    }
}
