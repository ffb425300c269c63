//! The lookup's HTML (maud: every interpolated value is HTML-escaped, so a
//! query like `<script>` is shown as text). Responsive CSS inline, no
//! JavaScript; WCAG 2.2: `lang` (3.1.1), labels (1.3.1, 3.3.2), contrast
//! ≥ 4.5:1 (1.4.3), visible keyboard focus (2.4.7), status in text and not
//! by colour alone (1.4.1), reflow at 320 px (1.4.10).

use maud::{html, Markup, DOCTYPE};

use super::{Lang, API_PATH, PAGE_PATH};
use crate::registry::lookup::{Chain, Page, PublicCertificate};
use crate::registry::model::{rfc3339, Kind, Reason, Status};

const STYLE: &str = include_str!("style.css");

fn t(lang: Lang, da: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Da => da,
        Lang::En => en,
    }
}

/// `?lang=en` to carry in links, or nothing for Danish.
fn lang_suffix(lang: Lang, first: bool) -> &'static str {
    match (lang, first) {
        (Lang::Da, _) => "",
        (Lang::En, true) => "?lang=en",
        (Lang::En, false) => "&lang=en",
    }
}

fn layout(lang: Lang, title: &str, body: Markup) -> String {
    let code = t(lang, "da", "en");
    html! {
        (DOCTYPE)
        html lang=(code) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – qsign" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    div.bar {
                        a.brand href={ (PAGE_PATH) (lang_suffix(lang, true)) } { "qsign" }
                        span.tag { (t(lang, "Certifikatopslag", "Certificate lookup")) }
                        nav {
                            @if lang == Lang::Da {
                                a href={ (PAGE_PATH) "?lang=en" } lang="en" { "English" }
                            } @else {
                                a href=(PAGE_PATH) lang="da" { "Dansk" }
                            }
                        }
                    }
                }
                main { (body) }
                footer {
                    p { (t(lang, "Kun offentliggjorte certifikater vises. JSON: ",
                        "Only published certificates are shown. JSON: "))
                        code { (API_PATH) "?q=…" } }
                }
            }
        }
    }
    .into_string()
}

fn search_form(lang: Lang, query: &str) -> Markup {
    html! {
        form.search method="get" action=(PAGE_PATH) role="search" {
            label for="q" { (t(lang, "Søg på CVR-nummer, organisationsnavn, e-mail, serienummer eller id",
                "Search by CVR number, organisation name, e-mail, serial number or id")) }
            div.row {
                input #q type="search" name="q" value=(query) maxlength="200" autocomplete="off";
                @if lang == Lang::En { input type="hidden" name="lang" value="en"; }
                button type="submit" { (t(lang, "Søg", "Search")) }
            }
        }
    }
}

/// The search page; `found` is Err when the search failed.
pub fn search(lang: Lang, query: &str, found: Result<&Page, ()>) -> String {
    let title = t(lang, "Find et certifikat", "Find a certificate");
    let body = html! {
        h1 { (title) }
        (search_form(lang, query))
        @match found {
            Err(()) => p.notice role="alert" { (t(lang,
                "Søgningen kunne ikke udføres. Tjek søgeteksten (højst 200 tegn) og prøv igen.",
                "The search could not be made. Check the query (at most 200 characters) and try again.")) },
            Ok(page) if query.trim().is_empty() => { @let _ = page; },
            Ok(page) if page.certificates.is_empty() => p.notice { (t(lang,
                "Ingen offentliggjorte certifikater matcher søgningen.",
                "No published certificate matches the search.")) },
            Ok(page) => (results(lang, query, page)),
        }
    };
    layout(lang, title, body)
}

fn results(lang: Lang, query: &str, page: &Page) -> Markup {
    html! {
        h2 { (t(lang, "Resultater", "Results")) }
        ul.results {
            @for c in &page.certificates {
                li.card {
                    a.title href={ (PAGE_PATH) "/" (c.id) (lang_suffix(lang, true)) } { (display_name(c)) }
                    (badge(lang, c))
                    p.meta { (kind(lang, c.kind)) " · " (t(lang, "Serienummer", "Serial")) " " code { (c.serial) } }
                    p.meta.subject { (c.subject) }
                    p.meta { (t(lang, "Gyldig til", "Valid until")) " " (when(c.not_after)) }
                }
            }
        }
        @if !page.next.is_empty() {
            @let next = form_urlencoded::Serializer::new(String::new())
                .append_pair("q", query).append_pair("page_token", &page.next).finish();
            a.next href={ (PAGE_PATH) "?" (next) (lang_suffix(lang, false)) } { (t(lang, "Næste side →", "Next page →")) }
        }
    }
}

/// One certificate: what it is, its status at a glance, downloads, chain.
pub fn detail(lang: Lang, c: &PublicCertificate, chain: &Chain) -> String {
    let title = display_name(c);
    let file = format!("{PAGE_PATH}/{}", c.id);
    let body = html! {
        p.back { a href={ (PAGE_PATH) (lang_suffix(lang, true)) } { (t(lang, "← Ny søgning", "← New search")) } }
        h1 { (title) }
        div class={ "status " (status_class(c.status)) } {
            (badge(lang, c))
            @if let Some(at) = c.revoked_at {
                p { (t(lang, "Spærret den ", "Revoked on ")) (when(at)) " · " (t(lang, "Årsag: ", "Reason: "))
                    (reason(lang, c.revocation_reason)) }
            }
        }
        div.downloads {
            a.button href={ (file) ".cer" } download { (t(lang, "Hent .cer (DER)", "Download .cer (DER)")) }
            a.button.secondary href={ (file) ".pem" } download { (t(lang, "Hent .pem", "Download .pem")) }
        }
        h2 { (t(lang, "Certifikat", "Certificate")) }
        dl {
            dt { (t(lang, "Type", "Kind")) } dd { (kind(lang, c.kind)) }
            dt { (t(lang, "Emne (subject)", "Subject")) } dd { (c.subject) }
            @if !c.certificate_email.is_empty() {
                dt { (t(lang, "E-mail", "E-mail")) } dd { (c.certificate_email) }
            }
            dt { (t(lang, "Udsteder", "Issuer")) } dd { (c.issuer) }
            dt { (t(lang, "Serienummer", "Serial number")) } dd { code { (c.serial) } }
            dt { (t(lang, "Gyldig fra", "Valid from")) } dd { (when(c.not_before)) }
            dt { (t(lang, "Gyldig til", "Valid until")) } dd { (when(c.not_after)) }
            dt { (t(lang, "Nøgle", "Key")) } dd { (c.key) }
            dt { "SHA-256" } dd { code.fp { (c.sha256) } }
            dt { "SHA-1" } dd { code.fp { (c.sha1) } }
            dt { "Id" } dd { code { (c.id) } }
        }
        h2 { (t(lang, "Kæde og spærring", "Chain and revocation")) }
        dl {
            dt { (t(lang, "Organisations-CA", "Organisation CA")) }
            dd { (chain.organization_ca) br; a href=(chain.ca_issuers) { (chain.ca_issuers) } }
            dt { (t(lang, "Rod-CA", "Root CA")) }
            dd { (chain.root) br; a href=(chain.root_url) { (chain.root_url) } }
            dt { (t(lang, "Spærreliste (CRL)", "Revocation list (CRL)")) } dd { a href=(chain.crl) { (chain.crl) } }
            dt { "OCSP" } dd { code { (chain.ocsp) } }
        }
    };
    layout(lang, &title, body)
}

pub fn not_found(lang: Lang) -> String {
    let title = t(lang, "Ikke fundet", "Not found");
    layout(
        lang,
        title,
        html! {
            h1 { (title) }
            p { (t(lang, "Der er intet offentliggjort certifikat med dette id.",
                "No published certificate has this id.")) }
            p { a href={ (PAGE_PATH) (lang_suffix(lang, true)) } { (t(lang, "Søg igen", "Search again")) } }
        },
    )
}

fn display_name(c: &PublicCertificate) -> String {
    if c.system_name.is_empty() {
        c.name.clone()
    } else {
        format!("{} ({})", c.name, c.system_name)
    }
}

fn status_class(status: Status) -> &'static str {
    match status {
        Status::Valid => "valid",
        Status::Revoked => "revoked",
        Status::Expired | Status::Pending => "expired",
    }
}

/// Colour, a symbol and a word (WCAG 1.4.1: not colour alone).
fn badge(lang: Lang, c: &PublicCertificate) -> Markup {
    let (symbol, text) = match c.status {
        Status::Valid => ("✓", t(lang, "Gyldig", "Valid")),
        Status::Revoked => ("✕", t(lang, "Spærret", "Revoked")),
        Status::Expired | Status::Pending => ("!", t(lang, "Udløbet", "Expired")),
    };
    html! {
        span class={ "badge " (status_class(c.status)) } data-status=(c.status.as_str()) {
            span aria-hidden="true" { (symbol) } " " (text)
        }
    }
}

fn kind(lang: Lang, kind: Kind) -> &'static str {
    match kind {
        Kind::Organization => t(lang, "Organisationscertifikat", "Organisation certificate"),
        Kind::System => t(lang, "Systemcertifikat", "System certificate"),
        Kind::User => t(lang, "Medarbejdercertifikat", "Employee certificate"),
    }
}

/// RFC 5280 §5.3.1 reasons in words.
fn reason(lang: Lang, reason: Option<Reason>) -> &'static str {
    match reason.unwrap_or(Reason::Unspecified) {
        Reason::Unspecified => t(lang, "ikke angivet", "unspecified"),
        Reason::KeyCompromise => t(lang, "nøglen er kompromitteret", "key compromise"),
        Reason::CaCompromise => t(lang, "CA'en er kompromitteret", "CA compromise"),
        Reason::AffiliationChanged => t(lang, "tilknytning ændret", "affiliation changed"),
        Reason::Superseded => t(lang, "erstattet", "superseded"),
        Reason::CessationOfOperation => t(lang, "ophørt", "cessation of operation"),
        Reason::PrivilegeWithdrawn => t(lang, "rettighed trukket tilbage", "privilege withdrawn"),
    }
}

/// `2026-12-02 07:41 UTC`.
fn when(seconds: i64) -> String {
    let text = rfc3339(seconds);
    match (text.get(..10), text.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(status: Status) -> PublicCertificate {
        PublicCertificate {
            id: "4702a07a-1e83-4ac1-ae21-fcb968033c27".into(),
            kind: Kind::System,
            name: "<b>Acme</b>".into(),
            system_name: "Invoicing".into(),
            certificate_email: String::new(),
            status,
            serial: "0a".into(),
            subject: "CN=x".into(),
            issuer: "CN=ca".into(),
            not_before: 0,
            not_after: 86_400,
            revoked_at: None,
            revocation_reason: None,
            key: "ECDSA P-256".into(),
            sha1: String::new(),
            sha256: String::new(),
            der: Vec::new(),
        }
    }

    fn chain() -> Chain {
        Chain {
            organization_ca: "CN=ca".into(),
            root: "CN=root".into(),
            crl: "http://h/crl".into(),
            ocsp: "http://h/ocsp".into(),
            ca_issuers: "http://h/ca".into(),
            root_url: "http://h/root".into(),
        }
    }

    #[test]
    fn expired_shows_in_words_and_values_are_escaped() {
        let page = detail(Lang::Da, &certificate(Status::Expired), &chain());
        assert!(page.contains("<html lang=\"da\">"));
        assert!(page.contains("Udløbet"));
        assert!(page.contains("&lt;b&gt;Acme&lt;/b&gt;"));
        assert!(!page.contains("<b>Acme"));
        let page = detail(Lang::En, &certificate(Status::Expired), &chain());
        assert!(page.contains("<html lang=\"en\">") && page.contains("Expired"));
        assert!(page.contains("1970-01-02 00:00 UTC"));
    }
}
