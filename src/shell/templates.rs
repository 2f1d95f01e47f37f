//! Mail templates: Handlebars files per language, with shared partials.
//!
//! Layout of the templates folder:
//! - `LANG/NAME.subject.hbs`, `LANG/NAME.text.hbs`, `LANG/NAME.html.hbs`: one template in
//!   one language (`en`, `fr`, `ar`, ...). Every template exists in the default language
//!   (`en`) with all three parts; another language may offer it too, and is then used for
//!   delegates who read that language. An optional `LANG/NAME.ics.hbs` adds a calendar
//!   invitation.
//! - `partials/NAME.hbs`: partials every template may use, such as the HTML `layout`
//!   (`{{#> layout}}...{{/layout}}`).
//!
//! Rendering is strict: a variable the data lacks is an error, found by `councild validate`
//! (which renders every template with sample data), never a blank in a delegate's mail.
//! HTML parts are HTML-escaped; subject and text parts are not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use handlebars::Handlebars;
use serde_json::{Value, json};

/// The language every template must exist in, and the fallback for all others.
pub const DEFAULT_LANGUAGE: &str = "en";
const PARTS: [&str; 3] = ["subject", "text", "html"];

pub struct Templates {
    text: Handlebars<'static>,
    /// Lenient and unescaped, for texts of the workflows such as ballot questions; each
    /// compiled on first use and kept (under its own text as its name).
    plain: std::sync::RwLock<Handlebars<'static>>,
    html: Handlebars<'static>,
    /// Template names by language.
    languages: BTreeMap<String, BTreeSet<String>>,
    /// Templates with a calendar invitation, by language.
    invitations: BTreeSet<String>,
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub language: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub ics: Option<String>,
}

/// Text direction of a language, for `dir` in HTML.
pub fn direction(language: &str) -> &'static str {
    match language {
        "ar" | "fa" | "he" | "ur" => "rtl",
        _ => "ltr",
    }
}

impl Templates {
    /// Loads the folder; every problem is returned, each with its file.
    pub fn load(dir: &Path) -> Result<Templates, Vec<String>> {
        let mut t = Templates {
            text: Handlebars::new(),
            plain: Default::default(),
            html: Handlebars::new(),
            languages: BTreeMap::new(),
            invitations: BTreeSet::new(),
        };
        t.text.set_strict_mode(true);
        t.html.set_strict_mode(true);
        t.text.register_escape_fn(handlebars::no_escape);
        if let Ok(plain) = t.plain.get_mut() {
            plain.register_escape_fn(handlebars::no_escape);
        }
        let mut errors = Vec::new();
        let mut parts: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        let folders =
            std::fs::read_dir(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
        for folder in folders
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
        {
            let Some(group) = folder
                .file_name()
                .and_then(|f| f.to_str())
                .map(String::from)
            else {
                continue;
            };
            let files = match std::fs::read_dir(&folder) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(format!("{}: {e}", folder.display()));
                    continue;
                }
            };
            for path in files.filter_map(|e| e.ok().map(|e| e.path())) {
                let Some(stem) = path
                    .file_name()
                    .and_then(|f| f.to_str())
                    .and_then(|f| f.strip_suffix(".hbs"))
                else {
                    continue;
                };
                let source = match std::fs::read_to_string(&path) {
                    Ok(s) => s,
                    Err(e) => {
                        errors.push(format!("{}: {e}", path.display()));
                        continue;
                    }
                };
                if group == "partials" {
                    for hb in [&mut t.text, &mut t.html] {
                        if let Err(e) = hb.register_partial(stem, &source) {
                            errors.push(format!("{}: {e}", path.display()));
                        }
                    }
                    continue;
                }
                let Some((name, part)) = stem.rsplit_once('.') else {
                    errors.push(format!(
                        "{}: name template files NAME.subject.hbs, NAME.text.hbs, NAME.html.hbs",
                        path.display()
                    ));
                    continue;
                };
                let hb = match part {
                    "subject" | "text" | "ics" => &mut t.text,
                    "html" => &mut t.html,
                    _ => {
                        errors.push(format!(
                            "{}: unknown part `{part}`: use subject, text, html or ics",
                            path.display()
                        ));
                        continue;
                    }
                };
                let source = if part == "subject" {
                    source.trim().to_string()
                } else {
                    source
                };
                match hb.register_template_string(&format!("{group}/{stem}"), source) {
                    Ok(()) => {
                        parts
                            .entry((group.clone(), name.to_string()))
                            .or_default()
                            .insert(part.to_string());
                    }
                    Err(e) => errors.push(format!("{}: {e}", path.display())),
                }
            }
        }
        for ((language, name), have) in &parts {
            for part in PARTS {
                if !have.contains(part) {
                    errors.push(format!(
                        "{}: template `{name}` has no {part} part in `{language}`",
                        dir.join(language)
                            .join(format!("{name}.{part}.hbs"))
                            .display()
                    ));
                }
            }
            if have.contains("ics") {
                t.invitations.insert(format!("{language}/{name}"));
            }
            t.languages
                .entry(language.clone())
                .or_default()
                .insert(name.clone());
        }
        for (language, names) in &t.languages {
            for name in names {
                if !t
                    .languages
                    .get(DEFAULT_LANGUAGE)
                    .is_some_and(|d| d.contains(name))
                {
                    errors.push(format!("{}: template `{name}` exists in `{language}` but not in the default language `{DEFAULT_LANGUAGE}`", dir.join(language).display()));
                }
            }
        }
        if !errors.is_empty() {
            errors.sort();
            return Err(errors);
        }
        Ok(t)
    }

    /// The template names workflows may use (those of the default language).
    pub fn names(&self) -> BTreeSet<String> {
        self.languages
            .get(DEFAULT_LANGUAGE)
            .cloned()
            .unwrap_or_default()
    }

    /// The language a delegate's mail is written in: theirs when the template has it.
    pub fn language_for(&self, name: &str, wanted: &str) -> String {
        let has = |l: &str| self.languages.get(l).is_some_and(|n| n.contains(name));
        if has(wanted) {
            wanted.to_string()
        } else {
            DEFAULT_LANGUAGE.to_string()
        }
    }

    /// Renders a template for a reader of `language` (with the default language as fallback).
    pub fn render(&self, name: &str, language: &str, data: &Value) -> Result<Rendered, String> {
        let language = self.language_for(name, language);
        let mut data = data.clone();
        data["lang"] = json!(language);
        data["dir"] = json!(direction(&language));
        let key = format!("{language}/{name}");
        let render = |hb: &Handlebars, part: &str| {
            hb.render(&format!("{key}.{part}"), &data)
                .map_err(|e| format!("template {key}.{part}: {e}"))
        };
        let ics = if self.invitations.contains(&key) {
            Some(render(&self.text, "ics")?)
        } else {
            None
        };
        Ok(Rendered {
            subject: render(&self.text, "subject")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            text: render(&self.text, "text")?,
            html: render(&self.html, "html")?,
            language,
            ics,
        })
    }

    /// Renders a text of a workflow (a ballot question) against item data, leniently: a
    /// text that is not a valid template is shown as it is.
    pub fn render_text(&self, text: &str, data: &Value) -> String {
        /// Texts kept compiled; past this many (a reload loop, say) they are dropped.
        const KEPT: usize = 1_000;
        let render = |hb: &Handlebars| hb.render(text, data).ok();
        if let Ok(hb) = self.plain.read()
            && hb.has_template(text)
        {
            return render(&hb).unwrap_or_else(|| text.to_string());
        }
        let Ok(mut hb) = self.plain.write() else {
            return text.to_string();
        };
        if hb.get_templates().len() >= KEPT {
            hb.clear_templates();
        }
        match hb.register_template_string(text, text) {
            Ok(()) => render(&hb).unwrap_or_else(|| text.to_string()),
            Err(_) => text.to_string(),
        }
    }

    /// Renders every template in every language with `sample` data: each problem (a
    /// variable the data does not have, a helper that fails) with its template.
    pub fn check(&self, dir: &Path, sample: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        for (language, names) in &self.languages {
            for name in names {
                if let Err(e) = self.render(name, language, sample) {
                    problems.push(format!(
                        "{}: {e}",
                        dir.join(language).join(format!("{name}.*.hbs")).display()
                    ));
                }
            }
        }
        problems
    }
}

/// Data shaped like what a mail sees, with every field set, for [`Templates::check`].
pub fn sample_data() -> Value {
    json!({
        "council": "CPCC Executive Council",
        "item": {
            "id": "item-1", "workflow": "regulation-adoption", "title": "Sample regulation",
            "inputs": { "title": "Sample regulation", "draft_url": "https://example.org/draft.pdf", "place": "CPCC Headquarters, Istanbul" },
            "stage": "vote", "outcome": "adopted", "register_number": "CPCC/REG/2026/001",
            "started": "Wednesday 25 November 2026, 09:00 +03",
            "next": { "local": "Tuesday 22 December 2026, 09:00 +03", "ics": "20261222T060000Z" },
        },
        "ballot": {
            "question": "Adopt the regulation?", "choices": ["yes", "no", "abstain"],
            "closes_at": "Wednesday 2 December 2026, 09:00 +03", "eligible": 55,
            "link": "http://127.0.0.1:8080/ballot/TOKEN", "reply_to": "ballot+TOKEN@example.org",
            "result": { "verdict": "adopted", "counts": { "yes": 40, "no": 10, "abstain": 3 }, "explanation": "yes >= 2/3 * (yes + no)" },
        },
        "vote": { "choice": "yes", "receipt": "0123456789abcdef" },
        "recipient": { "name": "A. Delegate", "language": "en", "member": "TUR", "member_name": "Türkiye" },
        "failure": { "to": "someone@example.org", "error": "550 no such user", "template": "ballot" },
    })
}
