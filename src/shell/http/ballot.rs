//! The public listener: the ballot page a delegate reaches from the link in their mail.
//!
//! `GET /ballot/{token}` shows the question, the choices and the member's current vote, in
//! the delegate's language; `POST /ballot/{token}` with form field `choice` records or
//! changes the vote and shows a receipt (the vote's event hash). A GET never votes. A POST
//! sent from another site is refused. Invalid, forged or foreign tokens get a clear page and
//! a 4xx status, and change nothing.

use super::{ApiError, App, AppState};
use crate::engine::{Ballot, Event, Item, Rejection, Status};
use crate::mail;
use crate::secret;
use crate::templates::direction;
use crate::token::BallotRef;
use crate::writer::WriteError;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// The form's fields: one `choice`, or in a round of an election for several seats, one
/// `choice` per candidate marked (joined by `+`, as the engine records such a ballot).
pub struct VoteForm {
    choice: String,
    /// A secret ballot's vote, encrypted by the page: `secret::Ballot` as JSON.
    sealed: Option<String>,
}

impl VoteForm {
    fn from_fields(fields: Vec<(String, String)>) -> Option<VoteForm> {
        let sealed = fields
            .iter()
            .find(|(k, _)| k == "sealed")
            .map(|(_, v)| v.clone());
        let marks: Vec<String> = fields
            .into_iter()
            .filter(|(k, _)| k == "choice")
            .map(|(_, v)| v)
            .collect();
        (!marks.is_empty() || sealed.is_some()).then(|| VoteForm {
            choice: marks.join("+"),
            sealed,
        })
    }
}

/// A secret round's vote as the page sent it: its ciphertexts (the vote's `choice`) and
/// proofs, which the engine checks; `None` when it is not a ballot's JSON.
fn sealed_vote(json: &str) -> Option<(String, secret::Proofs)> {
    let ballot: secret::Ballot = serde_json::from_str(json).ok()?;
    let (choices, proofs) = ballot.split();
    Some((secret::encode_choices(&choices), proofs))
}

/// A secret vote's tracker, from the vote as recorded (its ciphertexts).
fn tracker_of(b: &Ballot, choice: &str) -> String {
    secret::decode_choices(choice, b.choices.len())
        .map(|c| secret::tracker(&c))
        .unwrap_or_default()
}

/// What a token leads to, once checked against the stored item.
struct Found {
    r: BallotRef,
    item: std::sync::Arc<Item>,
    language: String,
}

impl Found {
    fn ballot(&self) -> Option<&Ballot> {
        self.item.ballots.get(self.r.ballot)
    }
}

/// The words of the ballot pages, per language (English when the language is not here).
struct Words {
    ballot: &'static str,
    not_valid_title: &'static str,
    not_valid: &'static str,
    gone: &'static str,
    not_yours_title: &'static str,
    not_yours: &'static str,
    not_voted: &'static str,
    current: &'static str,
    may_change: &'static str,
    your_vote_for: &'static str,
    cast: &'static str,
    closes: &'static str,
    /// A vote in the meeting has no deadline: the chair closes it.
    chair_closes: &'static str,
    choose: &'static str,
    /// Above the boxes of a round for several seats; `{n}` is the number of seats.
    mark_up_to: &'static str,
    elected: &'static str,
    no_one_elected: &'static str,
    recorded_title: &'static str,
    recorded: &'static str,
    receipt: &'static str,
    /// Above the list of the texts voted on, with their hashes.
    texts: &'static str,
    /// An amendment's number and proposer, and its changes: "replace … by …".
    amendment: &'static str,
    proposed_by: &'static str,
    replace: &'static str,
    by: &'static str,
    back: &'static str,
    closed_title: &'static str,
    closed: &'static str,
    result: &'static str,
    withdrawn: &'static str,
    /// The verdicts, in the order of `Verdict::ALL`.
    verdicts: [&'static str; 5],
    your_vote: &'static str,
    failed_title: &'static str,
    failed: &'static str,
    cross_site: &'static str,
    busy_title: &'static str,
    busy: &'static str,
    /// A secret ballot: what the page does, that it needs JavaScript, and its tracker.
    secret: &'static str,
    needs_js: &'static str,
    voted_secret: &'static str,
    tracker: &'static str,
    sealed_recorded: &'static str,
    not_checked: &'static str,
    counting: &'static str,
    /// The answer page's script: the tracker is (not) the one the browser computed.
    tracker_same: &'static str,
    tracker_other: &'static str,
}

impl Words {
    fn verdict(&self, verdict: crate::rules::Verdict) -> &'static str {
        let i = crate::rules::Verdict::ALL
            .iter()
            .position(|v| *v == verdict)
            .unwrap_or(0);
        self.verdicts[i]
    }
}

const EN: Words = Words {
    ballot: "Ballot",
    not_valid_title: "Link not valid",
    not_valid: "This ballot link is not valid. Please use the link in your most recent ballot mail, or contact the secretariat.",
    gone: "This ballot no longer exists.",
    not_yours_title: "Not in this ballot",
    not_yours: "This link does not give a vote in this ballot.",
    not_voted: "You have not voted yet.",
    current: "Your current vote:",
    may_change: "You may change it until the ballot closes.",
    your_vote_for: "Your vote for",
    cast: "Cast vote",
    closes: "The ballot closes on",
    chair_closes: "The vote is taken in the meeting: you may change your vote until the chair closes it.",
    choose: "Please choose one of the options.",
    mark_up_to: "Mark up to {n} candidates, or a blank ballot alone.",
    elected: "elected:",
    no_one_elected: "no candidate elected in this round",
    recorded_title: "Vote recorded",
    recorded: "Your vote is recorded:",
    receipt: "Receipt:",
    texts: "The texts voted on (the SHA-256 of each version):",
    amendment: "Amendment",
    proposed_by: "proposed by",
    replace: "replace",
    by: "by",
    back: "Back to the ballot (you can change your vote until it closes)",
    closed_title: "Ballot closed",
    closed: "This ballot is closed; votes can no longer be cast or changed.",
    result: "Result:",
    withdrawn: "The item was withdrawn.",
    verdicts: [
        "adopted",
        "rejected",
        "no quorum",
        "elected",
        "no candidate elected",
    ],
    your_vote: "Your vote:",
    failed_title: "Vote not recorded",
    failed: "Your vote could not be recorded. Nothing was changed; please try again in a moment.",
    cross_site: "Votes can only be cast from the ballot page itself.",
    busy_title: "Too many votes",
    busy: "This link has sent many votes in a short time. Nothing was changed; please try again in a minute.",
    secret: "This ballot is secret: your browser encrypts your vote before sending it, and nobody, the Secretariat included, can see how you voted. Only the sum of all the ballots is decrypted, by the election's trustees.",
    needs_js: "This secret ballot needs JavaScript, with which your browser encrypts your vote. Please turn JavaScript on, or open the link in another browser.",
    voted_secret: "You have voted. You may vote again until the ballot closes: only your last ballot is counted.",
    tracker: "Your ballot's tracker:",
    sealed_recorded: "Your encrypted vote is recorded. Keep its tracker: you will find it on the public list of the ballots counted.",
    not_checked: "Your vote could not be checked, and is not recorded: please reload the page and vote again.",
    counting: "The ballots are sealed: the count waits for the trustees' decryption.",
    tracker_same: "Your browser computed this same tracker from the vote it encrypted: the ballot recorded is the one it sent.",
    tracker_other: "Your browser computed another tracker ({tracker}) from the vote it encrypted: the ballot recorded is not the one it sent. Tell the Secretariat and the trustees.",
};

const FR: Words = Words {
    ballot: "Scrutin",
    not_valid_title: "Lien non valide",
    not_valid: "Ce lien de vote n'est pas valide. Veuillez utiliser le lien de votre dernier courriel de scrutin, ou contacter le Secrétariat.",
    gone: "Ce scrutin n'existe plus.",
    not_yours_title: "Hors de ce scrutin",
    not_yours: "Ce lien ne donne pas de voix dans ce scrutin.",
    not_voted: "Vous n'avez pas encore voté.",
    current: "Votre vote actuel :",
    may_change: "Vous pouvez le modifier jusqu'à la clôture du scrutin.",
    your_vote_for: "Votre vote pour",
    cast: "Voter",
    closes: "Le scrutin sera clos le",
    chair_closes: "Le vote a lieu en séance : vous pouvez modifier votre vote jusqu'à ce que le président le clôture.",
    choose: "Veuillez choisir l'une des options.",
    mark_up_to: "Cochez au plus {n} candidats, ou seulement le bulletin blanc.",
    elected: "élus :",
    no_one_elected: "aucun candidat élu à ce tour",
    recorded_title: "Vote enregistré",
    recorded: "Votre vote est enregistré :",
    receipt: "Accusé de réception :",
    texts: "Les textes soumis au vote (l’empreinte SHA-256 de chaque version) :",
    amendment: "Amendement",
    proposed_by: "proposé par",
    replace: "remplacer",
    by: "par",
    back: "Retour au scrutin (vous pouvez modifier votre vote jusqu'à la clôture)",
    closed_title: "Scrutin clos",
    closed: "Ce scrutin est clos ; il n'est plus possible de voter ni de modifier un vote.",
    result: "Résultat :",
    withdrawn: "Le point a été retiré.",
    verdicts: [
        "adopté",
        "rejeté",
        "quorum non atteint",
        "élection acquise",
        "aucun candidat élu",
    ],
    your_vote: "Votre vote :",
    failed_title: "Vote non enregistré",
    failed: "Votre vote n'a pas pu être enregistré. Rien n'a été modifié ; veuillez réessayer dans un instant.",
    cross_site: "Le vote ne peut être exprimé que depuis la page du scrutin.",
    busy_title: "Trop de votes",
    busy: "Ce lien a envoyé de nombreux votes en peu de temps. Rien n'a été modifié ; veuillez réessayer dans une minute.",
    secret: "Ce scrutin est secret : votre navigateur chiffre votre vote avant de l'envoyer, et personne, pas même le Secrétariat, ne peut voir comment vous avez voté. Seule la somme de tous les bulletins est déchiffrée, par les autorités de déchiffrement de l'élection.",
    needs_js: "Ce scrutin secret a besoin de JavaScript, avec lequel votre navigateur chiffre votre vote. Veuillez activer JavaScript, ou ouvrir le lien dans un autre navigateur.",
    voted_secret: "Vous avez voté. Vous pouvez voter de nouveau jusqu'à la clôture du scrutin : seul votre dernier bulletin est compté.",
    tracker: "Code de suivi de votre bulletin :",
    sealed_recorded: "Votre vote chiffré est enregistré. Conservez son code de suivi : vous le trouverez sur la liste publique des bulletins comptés.",
    not_checked: "Votre vote n'a pas pu être vérifié et n'est pas enregistré : veuillez recharger la page et voter de nouveau.",
    counting: "Les bulletins sont scellés : le dépouillement attend le déchiffrement par les autorités de déchiffrement.",
    tracker_same: "Votre navigateur a calculé ce même code de suivi à partir du vote qu'il a chiffré : le bulletin enregistré est celui qu'il a envoyé.",
    tracker_other: "Votre navigateur a calculé un autre code de suivi ({tracker}) à partir du vote qu'il a chiffré : le bulletin enregistré n'est pas celui qu'il a envoyé. Prévenez le Secrétariat et les autorités de déchiffrement.",
};

const AR: Words = Words {
    ballot: "اقتراع",
    not_valid_title: "رابط غير صالح",
    not_valid: "رابط الاقتراع هذا غير صالح. يرجى استخدام الرابط الوارد في أحدث رسالة اقتراع، أو الاتصال بالأمانة.",
    gone: "لم يعد هذا الاقتراع موجودًا.",
    not_yours_title: "خارج هذا الاقتراع",
    not_yours: "لا يمنح هذا الرابط صوتًا في هذا الاقتراع.",
    not_voted: "لم تصوّتوا بعد.",
    current: "صوتكم الحالي:",
    may_change: "يمكنكم تغييره حتى إغلاق الاقتراع.",
    your_vote_for: "صوتكم باسم",
    cast: "تصويت",
    closes: "يُغلق الاقتراع في",
    chair_closes: "يجري التصويت في الجلسة: يمكنكم تعديل تصويتكم إلى أن يُعلن الرئيس إغلاقه.",
    choose: "يرجى اختيار أحد الخيارات.",
    mark_up_to: "ضعوا علامة على {n} مرشحين على الأكثر، أو على الورقة البيضاء وحدها.",
    elected: "فاز:",
    no_one_elected: "لم يُنتخب أي مرشح في هذه الجولة",
    recorded_title: "تم تسجيل الصوت",
    recorded: "تم تسجيل صوتكم:",
    receipt: "الإيصال:",
    texts: "النصوص المعروضة للتصويت (بصمة SHA-256 لكل نسخة):",
    amendment: "التعديل رقم",
    proposed_by: "المقترح من",
    replace: "يُستعاض عن",
    by: "بـ",
    back: "العودة إلى الاقتراع (يمكنكم تغيير صوتكم حتى إغلاقه)",
    closed_title: "الاقتراع مغلق",
    closed: "هذا الاقتراع مغلق؛ لم يعد من الممكن التصويت أو تغيير الصوت.",
    result: "النتيجة:",
    withdrawn: "سُحب البند.",
    verdicts: [
        "اعتُمد",
        "رُفض",
        "لم يكتمل النصاب",
        "تمّ الانتخاب",
        "لم يُنتخب أي مرشح",
    ],
    your_vote: "صوتكم:",
    failed_title: "لم يُسجَّل الصوت",
    failed: "تعذّر تسجيل صوتكم. لم يتغيّر شيء؛ يرجى المحاولة مرة أخرى بعد قليل.",
    cross_site: "لا يمكن التصويت إلا من صفحة الاقتراع نفسها.",
    busy_title: "أصوات كثيرة جدًا",
    busy: "أرسل هذا الرابط أصواتًا كثيرة في وقت قصير. لم يتغيّر شيء؛ يرجى المحاولة مرة أخرى بعد دقيقة.",
    secret: "هذا اقتراع سري: يشفّر متصفحكم صوتكم قبل إرساله، ولا يستطيع أحد، ولا الأمانة نفسها، معرفة كيف صوّتم. ولا يُفك تشفير إلا مجموع الأوراق كلها، على يد الجهات المؤتمنة على مفتاح الانتخاب.",
    needs_js: "يحتاج هذا الاقتراع السري إلى JavaScript، الذي يشفّر به متصفحكم صوتكم. يُرجى تفعيل JavaScript أو فتح الرابط في متصفح آخر.",
    voted_secret: "لقد صوّتم. يمكنكم التصويت من جديد حتى إغلاق الاقتراع: لا تُحتسب إلا ورقتكم الأخيرة.",
    tracker: "رمز التتبّع لورقتكم:",
    sealed_recorded: "سُجّل صوتكم المشفّر. احتفظوا برمز تتبّعه: ستجدونه في القائمة العامة للأوراق المحتسبة.",
    not_checked: "تعذّر التحقق من صوتكم ولم يُسجَّل: يُرجى إعادة تحميل الصفحة والتصويت من جديد.",
    counting: "الأوراق مختومة: ينتظر الفرز فكّ التشفير على يد الجهات المؤتمنة على مفتاح الانتخاب.",
    tracker_same: "حسب متصفحكم رمز التتبّع نفسه من الصوت الذي شفّره: الورقة المسجّلة هي التي أرسلها.",
    tracker_other: "حسب متصفحكم رمز تتبّع آخر ({tracker}) من الصوت الذي شفّره: الورقة المسجّلة ليست التي أرسلها. يُرجى إبلاغ الأمانة والجهات المؤتمنة على مفتاح الانتخاب.",
};

/// The usual choices in the reader's language; other choices are shown as written.
fn choice_label<'a>(language: &str, choice: &'a str) -> &'a str {
    match (language, choice) {
        ("fr", "yes") => "oui",
        ("fr", "no") => "non",
        ("fr", "abstain") => "abstention",
        ("ar", "yes") => "نعم",
        ("ar", "no") => "لا",
        ("ar", "abstain") => "امتناع",
        ("en", "blank") => "blank ballot",
        ("fr", "blank") => "bulletin blanc",
        ("ar", "blank") => "ورقة بيضاء",
        _ => choice,
    }
}

/// The language the pages are shown in: the delegate's if there are words for it.
fn page_language(language: &str) -> &str {
    match language {
        "fr" | "ar" => language,
        _ => "en",
    }
}

/// What a member's signed link of `kind` (`BallotRef::PROPOSALS`, `AMENDMENTS`) stands
/// for: the link, its item, and the language its pages are shown in (the delegate's).
pub(super) fn member_link(
    app: &App,
    token: &str,
    kind: usize,
) -> Option<(BallotRef, std::sync::Arc<Item>, String)> {
    let r = app.key.verify(token).filter(|r| r.ballot == kind)?;
    let item = app.items.get(&r.item)?;
    let roster = app.roster.load();
    let delegate = roster.member(&r.member)?.delegates.get(r.delegate)?;
    let language = page_language(&delegate.language).to_string();
    Some((r, item, language))
}

/// What every member's form on the public listener (a proposal, an amendment, a
/// nomination) checks before anything is done: a post from another site gets the page
/// `elsewhere` makes (with 403), and one over the link's rate limit the page `busy` makes,
/// with `Retry-After`.
pub(super) fn refused_post(
    app: &App,
    headers: &HeaderMap,
    peer: Option<axum::Extension<super::Peer>>,
    r: &BallotRef,
    elsewhere: impl FnOnce() -> Response,
    busy: impl FnOnce() -> Response,
) -> Option<Response> {
    if super::cross_site(headers, Some(&app.config.public.url)) {
        let mut refused = elsewhere();
        *refused.status_mut() = StatusCode::FORBIDDEN;
        return Some(refused);
    }
    if !app
        .limits
        .vote_allowed(r, super::client(app, headers, peer))
    {
        let mut busy = busy();
        busy.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        return Some(busy);
    }
    None
}

/// The page of a member's form sent from another site.
pub(super) fn elsewhere_page(language: &str, title: &str, text: &str) -> Response {
    let text = format!("<p class=\"error\" role=\"alert\">{text}</p>");
    page(StatusCode::FORBIDDEN, language, title, &text)
}

fn words(language: &str) -> &'static Words {
    match language {
        "fr" => &FR,
        "ar" => &AR,
        _ => &EN,
    }
}

/// The token of a ballot link, as the path gives it. A path that gives none (its segment
/// is not UTF-8, say) gets the page a forged token gets, not the extractor's own error:
/// every bad link is answered alike.
pub struct Token(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for Token {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Token, Response> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(token)) => Ok(Token(token)),
            Err(_) => Err(*not_valid()),
        }
    }
}

/// A refusal page, in English: the link gives no delegate, so no language.
fn refuse(status: StatusCode, title: &str, text: &str) -> Box<Response> {
    Box::new(page(
        status,
        "en",
        title,
        &format!("<p>{}</p>", escape(text)),
    ))
}

/// The answer to a link that is not valid: forged, foreign, or not a token at all.
fn not_valid() -> Box<Response> {
    refuse(StatusCode::NOT_FOUND, EN.not_valid_title, EN.not_valid)
}

fn find(app: &App, token: &str) -> Result<Found, Box<Response>> {
    let w = &EN;
    let r = app.key.verify(token).ok_or_else(not_valid)?;
    let item = app
        .items
        .get(&r.item)
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, w.not_valid_title, w.gone))?;
    let voter = item.ballots.get(r.ballot).and_then(|b| {
        b.electorate
            .voter(&r.member)
            .filter(|v| v.delegate == r.delegate)
    });
    let Some(language) = voter.map(|v| v.language.clone()) else {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            w.not_yours_title,
            w.not_yours,
        ));
    };
    let language = page_language(&language).to_string();
    Ok(Found { r, item, language })
}

pub async fn ballot_page(State(app): AppState, Token(token): Token) -> Response {
    match find(&app, &token) {
        Ok(f) => ballot_html(&app, &f, &token, None),
        Err(r) => *r,
    }
}

pub async fn ballot_vote(
    State(app): AppState,
    Token(token): Token,
    headers: HeaderMap,
    peer: Option<axum::Extension<super::Peer>>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let f = match find(&app, &token) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let w = words(&f.language);
    let closed = f.ballot().is_none_or(|b| b.closed()) || f.item.status == Status::Ended;
    if closed {
        return page(
            StatusCode::CONFLICT,
            &f.language,
            w.closed_title,
            &format!("<p>{}</p>", w.closed),
        );
    }
    if super::cross_site(&headers, Some(&app.config.public.url)) {
        return page(
            StatusCode::FORBIDDEN,
            &f.language,
            w.failed_title,
            &format!("<p>{}</p>", w.cross_site),
        );
    }
    let Some(form) = form.ok().and_then(|Form(f)| VoteForm::from_fields(f)) else {
        return ballot_html(&app, &f, &token, Some((StatusCode::BAD_REQUEST, w.choose)));
    };
    let client = super::client(&app, &headers, peer);
    if !app.limits.vote_allowed(&f.r, client) {
        app.metrics.votes_limited.inc();
        let mut busy = page(
            StatusCode::TOO_MANY_REQUESTS,
            &f.language,
            w.busy_title,
            &format!("<p>{}</p>", w.busy),
        );
        busy.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        return busy;
    }
    let secret_ballot = f.ballot().filter(|b| b.sealed.is_some());
    let (choice, proofs) = match (secret_ballot, &form.sealed) {
        (Some(_), Some(json)) => match sealed_vote(json) {
            Some((choice, proofs)) => (choice, Some(Box::new(proofs))),
            None => {
                let why = (StatusCode::UNPROCESSABLE_ENTITY, w.not_checked);
                return ballot_html(&app, &f, &token, Some(why));
            }
        },
        (Some(_), None) | (None, Some(_)) => {
            return ballot_html(&app, &f, &token, Some((StatusCode::BAD_REQUEST, w.choose)));
        }
        (None, None) => (form.choice.clone(), None),
    };
    let receipt = match cast(&app, &f.r, &choice, proofs).await {
        Ok(receipt) => receipt,
        Err(WriteError::Rejected(Rejection::BallotClosed | Rejection::Ended)) => {
            return page(
                StatusCode::CONFLICT,
                &f.language,
                w.closed_title,
                &format!("<p>{}</p>", w.closed),
            );
        }
        Err(WriteError::Rejected(Rejection::ProofsFail)) => {
            let why = (StatusCode::UNPROCESSABLE_ENTITY, w.not_checked);
            return ballot_html(&app, &f, &token, Some(why));
        }
        Err(WriteError::Rejected(Rejection::NoSuchChoice(_) | Rejection::TooManyMarks(_))) => {
            let seats = f.ballot().and_then(|b| b.round).map_or(1, |r| r.seats);
            let why = match seats > 1 {
                true => w.mark_up_to.replace("{n}", &seats.to_string()),
                false => w.choose.to_string(),
            };
            return ballot_html(
                &app,
                &f,
                &token,
                Some((StatusCode::UNPROCESSABLE_ENTITY, &why)),
            );
        }
        Err(e) => {
            return page(
                ApiError::from(e).0,
                &f.language,
                w.failed_title,
                &format!("<p>{}</p>", w.failed),
            );
        }
    };
    let question = f
        .ballot()
        .map(|b| question(&app, &f.item, b, &f.language))
        .unwrap_or_default();
    let texts = f
        .ballot()
        .map(|b| texts_html(b, &token, w))
        .unwrap_or_default();
    let recorded = match secret_ballot {
        // The page's script compares the tracker with the one the browser computed.
        Some(b) => format!(
            "<p>{}</p><p>{} <code id=\"tracker\" data-check=\"/ballot/{}\">{}</code></p>\
             <p id=\"tracker-check\" hidden data-same=\"{}\" data-other=\"{}\"></p>\
             <script src=\"/assets/secret-ballot.js\" defer></script>",
            w.sealed_recorded,
            w.tracker,
            escape(&token),
            tracker_of(b, &choice),
            escape(w.tracker_same),
            escape(w.tracker_other)
        ),
        None => format!(
            "<p>{} <strong id=\"choice\">{}</strong></p>",
            w.recorded,
            escape(&label(&app, &f, &form.choice))
        ),
    };
    let body = format!(
        "<p class=\"question\">{}</p>{recorded}\
                 <p>{} <code id=\"receipt\" data-member=\"{}\">{}</code></p>{texts}<p><a href=\"/ballot/{}\">{}</a></p>",
        escape(&question),
        w.receipt,
        escape(&f.r.member),
        escape(&receipt),
        escape(&token),
        w.back
    );
    page(StatusCode::OK, &f.language, w.recorded_title, &body)
}

/// Casts a vote and returns its receipt. A repeat of the member's current choice changes
/// nothing: it is answered with the receipt of the vote that recorded the choice, once that
/// vote is durable (the record read may be in a commit still syncing). Should another vote
/// of the member's come in between, the repeat is answered as if it came first.
async fn cast(
    app: &App,
    r: &BallotRef,
    choice: &str,
    proofs: Option<Box<secret::Proofs>>,
) -> Result<String, WriteError> {
    let store = |e: crate::store::Error| WriteError::Store(e.to_string());
    let event = Event::VoteCast {
        ballot: r.ballot,
        member: r.member.clone(),
        choice: choice.to_string(),
        proofs,
    };
    match app.writer.event(r.item.clone(), event, None).await {
        Ok(done) => {
            tracing::info!(item = %r.item, member = %r.member, ballot = r.ballot, receipt = %done.hash, "vote recorded");
            Ok(done.hash)
        }
        Err(WriteError::Rejected(Rejection::SameChoice)) => {
            let vote = app
                .store
                .last_vote(&r.item, r.ballot, &r.member, choice)
                .map_err(store)?
                .ok_or_else(|| WriteError::Store("the repeated vote is not in the log".into()))?;
            app.store.flush().await.map_err(store)?;
            Ok(vote.hash)
        }
        Err(e) => Err(e),
    }
}

/// A ballot's question for a reader of `language`: the workflow's text in that language
/// (or its default), with the item's fields, in that language too, put in.
pub(super) fn question(
    app: &App,
    item: &Item,
    ballot: &crate::engine::Ballot,
    language: &str,
) -> String {
    let defs = app.defs.load();
    let workflow = defs.version(&item.version).map(|w| &**w);
    let text = workflow
        .and_then(|w| w.ballot(&ballot.stage))
        .map_or(ballot.question.as_str(), |s| s.question.get(language));
    // A text without placeholders is shown as written, without the item's data.
    if !text.contains("{{") {
        return text.to_string();
    }
    // This ballot's own data (an amendment's number, say).
    let index = item.ballots.iter().position(|b| std::ptr::eq(b, ballot));
    let roster = app.roster.load();
    let revision = app.items.revision(item);
    let key = index.map(|i| (item.id.clone(), i, language.to_string()));
    if let (Some(revision), Some(key)) = (revision, &key)
        && let Some(question) = app.questions.get(key, revision, &roster.council)
    {
        return question;
    }
    let mut data = mail::context(&roster.council, workflow, item, index, app.tz);
    mail::in_language(&mut data, language);
    let question = app.templates.load().render_text(text, &data, language);
    if let (Some(revision), Some(key)) = (revision, key) {
        app.questions
            .put(key, revision, &roster.council, question.clone());
    }
    question
}

/// Ballot questions as rendered, by item, ballot and language, each under the item's
/// revision ([`crate::writer::Items::revision`]) and the council's name: a vote's page
/// renders its question again only once the item changed other than by votes.
#[derive(Default)]
pub struct Questions(std::sync::Mutex<std::collections::HashMap<QuestionKey, Kept>>);

/// An item's id, the ballot's index and the reader's language.
type QuestionKey = (String, usize, String);

struct Kept {
    revision: u64,
    council: String,
    question: String,
}

impl Questions {
    /// Questions kept, at most; past them, the cache starts again.
    const KEPT: usize = 10_000;

    fn get(&self, key: &QuestionKey, revision: u64, council: &str) -> Option<String> {
        let kept = self.0.lock().ok()?;
        let k = kept.get(key)?;
        (k.revision == revision && k.council == council).then(|| k.question.clone())
    }

    fn put(&self, key: QuestionKey, revision: u64, council: &str, question: String) {
        if let Ok(mut kept) = self.0.lock() {
            if kept.len() >= Self::KEPT {
                kept.clear();
            }
            let council = council.to_string();
            kept.insert(
                key,
                Kept {
                    revision,
                    council,
                    question,
                },
            );
        }
    }
}

/// A choice as the reader sees it: the workflow's label in the page's language, else the
/// usual word for `yes`, `no` and `abstain`, else the choice as written.
fn label(app: &App, f: &Found, choice: &str) -> String {
    if let Some(names) = f
        .ballot()
        .and_then(|b| f.item.candidate_label(b, choice, &f.language))
    {
        return names;
    }
    let defs = app.defs.load();
    let spec = f
        .ballot()
        .and_then(|b| defs.version(&f.item.version)?.ballot(&b.stage));
    match spec.and_then(|s| s.labels.get(choice)) {
        Some(texts) => texts.get(&f.language).to_string(),
        None => choice_label(&f.language, choice).to_string(),
    }
}

fn ballot_html(app: &App, f: &Found, token: &str, error: Option<(StatusCode, &str)>) -> Response {
    let w = words(&f.language);
    let Some(b) = f.ballot() else {
        return page(StatusCode::NOT_FOUND, "en", EN.not_valid_title, "");
    };
    let title = app.title_of(&f.item);
    let member_name = b
        .electorate
        .voter(&f.r.member)
        .map_or(f.r.member.as_str(), |v| v.member_name.as_str());
    let closes = crate::locale::datetime(
        &f.language,
        b.closes_at.with_timezone(&app.tz).fixed_offset(),
    );
    let current = b.vote(&f.r.member);
    let mut body = format!(
        "<p class=\"item\"><bdi>{}</bdi> — <bdi>{}</bdi></p><h2 id=\"question\"><bdi>{}</bdi></h2>",
        escape(&app.roster.load().council),
        escape(&title),
        escape(&question(app, &f.item, b, &f.language))
    );
    body.push_str(&amendment_html(&f.item, b, w));
    body.push_str(&texts_html(b, token, w));
    if b.closed() || f.item.status == Status::Ended {
        body.push_str(&format!("<p>{}</p>", w.closed));
        match &b.result {
            Some(result) if b.round.is_some() => body.push_str(&format!(
                "<p>{} <strong id=\"verdict\">{}</strong></p>",
                w.result,
                escape(&match result.elected.is_empty() {
                    true => w.no_one_elected.to_string(),
                    false => format!("{} {}", w.elected, label(app, f, &result.elected.join("+"))),
                })
            )),
            Some(result) => body.push_str(&format!(
                "<p>{} <strong id=\"verdict\">{}</strong></p>",
                w.result,
                w.verdict(result.verdict)
            )),
            None if b.sealed.is_some() && f.item.status != Status::Ended => {
                body.push_str(&format!("<p id=\"counting\">{}</p>", w.counting))
            }
            None => body.push_str(&format!("<p>{}</p>", w.withdrawn)),
        }
        match current {
            Some(c) if b.sealed.is_some() => body.push_str(&format!(
                "<p>{} <code id=\"tracker\">{}</code></p>",
                w.tracker,
                tracker_of(b, c)
            )),
            Some(c) => body.push_str(&format!(
                "<p>{} <strong id=\"current\">{}</strong></p>",
                w.your_vote,
                escape(c)
            )),
            None => {}
        }
        return page(StatusCode::OK, &f.language, w.closed_title, &body);
    }
    if let Some((_, message)) = &error {
        body.push_str(&format!("<p class=\"error\" role=\"alert\">{message}</p>"));
    }
    if b.sealed.is_some() {
        return secret_form(
            app,
            f,
            b,
            token,
            error.map_or(StatusCode::OK, |(s, _)| s),
            body,
        );
    }
    match current {
        Some(c) => body.push_str(&format!(
            "<p>{} <strong id=\"current\" data-choice=\"{}\">{}</strong>. {}</p>",
            w.current,
            escape(c),
            escape(&label(app, f, c)),
            w.may_change
        )),
        None => body.push_str(&format!("<p>{}</p>", w.not_voted)),
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/ballot/{}\"><fieldset><legend>{} <bdi>{}</bdi></legend>",
        escape(token),
        w.your_vote_for,
        escape(member_name)
    ));
    // A round for several seats: a box per candidate, up to the seats marked.
    let seats = b.round.map_or(1, |r| r.seats);
    if seats > 1 {
        body.push_str(&format!(
            "<p id=\"mark-up-to\">{}</p>",
            w.mark_up_to.replace("{n}", &seats.to_string())
        ));
    }
    let marked: Vec<&str> = current.map_or(Vec::new(), |c| c.split('+').collect());
    for c in &b.choices {
        let checked = if marked.contains(&c.as_str()) {
            " checked"
        } else {
            ""
        };
        let kind = match seats > 1 {
            true => "checkbox\"",
            false => "radio\" required",
        };
        body.push_str(&format!(
            "<label><input type=\"{kind} name=\"choice\" value=\"{}\"{}> {}</label>",
            escape(c),
            checked,
            escape(&label(app, f, c))
        ));
    }
    let closing = match b.in_session {
        true => w.chair_closes.to_string(),
        false => format!("{} <bdi><time>{}</time></bdi>.", w.closes, closes),
    };
    body.push_str(&format!(
        "</fieldset><button type=\"submit\">{}</button></form><p>{closing}</p>",
        w.cast
    ));
    page(
        error.map_or(StatusCode::OK, |(s, _)| s),
        &f.language,
        w.ballot,
        &body,
    )
}

/// A secret round's form: the choices without names (nothing but the encrypted vote is
/// posted), the round's key and context for the page's script, which encrypts the vote.
fn secret_form(
    app: &App,
    f: &Found,
    b: &Ballot,
    token: &str,
    status: StatusCode,
    mut body: String,
) -> Response {
    let w = words(&f.language);
    let key = b.sealed.as_ref().map_or("", |s| s.key.as_str());
    let shape = b.shape();
    let (seats, blank) = (shape.seats, shape.blank);
    body.push_str(&format!("<p id=\"secret\">{}</p>", w.secret));
    if let Some(c) = b.vote(&f.r.member) {
        body.push_str(&format!(
            "<p>{} {} <code id=\"tracker\">{}</code></p>",
            w.voted_secret,
            w.tracker,
            tracker_of(b, c)
        ));
    } else {
        body.push_str(&format!("<p>{}</p>", w.not_voted));
    }
    body.push_str(&format!(
        "<noscript><p id=\"needs-javascript\" class=\"error\">{}</p></noscript>",
        w.needs_js
    ));
    let mark_up_to = w.mark_up_to.replace("{n}", &seats.to_string());
    body.push_str(&format!(
        "<form id=\"secret-ballot\" method=\"post\" action=\"/ballot/{t}\" data-key=\"{key}\" data-context=\"{ctx}\" data-seats=\"{seats}\" data-blank=\"{blank}\" data-choose-one=\"{choose}\" data-mark-up-to=\"{mark}\"><fieldset><legend>{} <bdi>{}</bdi></legend>",
        w.your_vote_for,
        escape(&member_name(b, &f.r.member)),
        t = escape(token),
        key = escape(key),
        ctx = escape(&String::from_utf8_lossy(&secret::ballot_context(&f.item.id, f.r.ballot, &f.r.member))),
        choose = escape(w.choose),
        mark = escape(&mark_up_to),
    ));
    if seats > 1 {
        body.push_str(&format!("<p id=\"mark-up-to\">{}</p>", escape(&mark_up_to)));
    }
    let kind = if seats > 1 { "checkbox" } else { "radio" };
    for c in &b.choices {
        body.push_str(&format!(
            "<label><input type=\"{kind}\" data-choice=\"{}\"> {}</label>",
            escape(c),
            escape(&label(app, f, c))
        ));
    }
    let closes = crate::locale::datetime(
        &f.language,
        b.closes_at.with_timezone(&app.tz).fixed_offset(),
    );
    body.push_str(&format!(
        "</fieldset><input type=\"hidden\" name=\"sealed\" value=\"\"><p id=\"secret-error\" class=\"error\" role=\"alert\" hidden></p><button type=\"submit\" disabled>{}</button></form><p>{} <bdi><time>{closes}</time></bdi>.</p><script src=\"/assets/secret-ballot.js\" defer></script>",
        w.cast, w.closes
    ));
    page(status, &f.language, w.ballot, &body)
}

fn member_name(b: &Ballot, member: &str) -> String {
    b.electorate
        .voter(member)
        .map_or(member, |v| v.member_name.as_str())
        .to_string()
}

/// The secret ballot's script: encrypts the vote in the page (`assets/secret-ballot`).
pub async fn secret_ballot_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("secret-ballot.js"),
    )
        .into_response()
}

/// What a ballot on an amendment changes: each language's passage and its replacement.
fn amendment_html(item: &crate::engine::Item, b: &crate::engine::Ballot, w: &Words) -> String {
    let Some(a) = b
        .amendment
        .and_then(|n| item.amendments.iter().find(|a| a.number == n))
    else {
        return String::new();
    };
    let changes: String = a
        .changes
        .iter()
        .map(|(l, c)| {
            format!(
                "<li>{}: {} <q><bdi lang=\"{l}\">{}</bdi></q> {} <q><bdi lang=\"{l}\">{}</bdi></q></li>",
                escape(crate::locale::language_name(l)),
                w.replace,
                escape(&c.passage),
                w.by,
                escape(&c.replacement),
                l = escape(l),
            )
        })
        .collect();
    format!(
        "<section id=\"amendment\"><p><strong>{} {}</strong>, {} <bdi>{}</bdi>:</p><ul>{changes}</ul></section>",
        w.amendment,
        a.number,
        w.proposed_by,
        escape(&a.member)
    )
}

/// The versions a ballot is on: each language's, named in itself, with its SHA-256 and a
/// link through the member's own token.
fn texts_html(b: &crate::engine::Ballot, token: &str, w: &Words) -> String {
    if b.texts.is_empty() {
        return String::new();
    }
    let items: String = b
        .texts
        .iter()
        .map(|(language, sha256)| {
            format!(
                "<li><a href=\"/texts/{}/{sha256}\" hreflang=\"{language}\" lang=\"{language}\">{}</a> <code dir=\"ltr\" class=\"sha256\">{sha256}</code></li>",
                escape(token),
                escape(crate::locale::language_name(language)),
                language = escape(language),
                sha256 = escape(sha256),
            )
        })
        .collect();
    format!(
        "<section id=\"texts\"><p>{}</p><ul>{items}</ul></section>",
        w.texts
    )
}

/// A whole page, in a language and its direction; readable on a phone, no JavaScript.
pub fn page(status: StatusCode, language: &str, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"{2}\" dir=\"{3}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{0}</title><style>body{{font-family:system-ui,\"Noto Naskh Arabic\",\"Segoe UI\",Tahoma,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.6;color:#1b1b1b}}\
         fieldset{{border:1px solid #c5ccd3;padding:.5rem 1rem}}label{{display:block;padding:.5rem 0;font-size:1.15rem}}input[type=radio]{{width:1.2rem;height:1.2rem;margin-inline-end:.6rem}}\
         button{{font-size:1.1rem;padding:.6rem 1.6rem;margin-top:1rem;background:#0b4f6c;color:#fff;border:0;border-radius:4px}}\
         .error{{color:#a00;font-weight:bold}}code{{word-break:break-all}}</style></head>\
         <body><main><h1>{0}</h1>{1}</main></body></html>",
        escape(title),
        body,
        escape(language),
        direction(language)
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
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
