//! Who may see and change which deployment (indigo-api.md §5). Pure functions, no IO.
//!
//! `p = None` is the no-auth mode: everything is visible and changeable. A deployment whose
//! owner is `None` (created in no-auth mode) is visible and changeable by everyone.

use std::sync::OnceLock;

use axum::http::StatusCode;
use regex::Regex;

use super::Principal;

/// A deployment's owner as stored: `createdBy = {issuer, subject}` plus the owner's organisation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    pub issuer: String,
    pub subject: String,
    pub organisation: Option<String>,
}

impl Owner {
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>, organisation: Option<String>) -> Self {
        Owner { issuer: issuer.into(), subject: subject.into(), organisation }
    }

    /// From the three nullable store columns; `None` unless both issuer and subject are set.
    pub fn from_columns(issuer: Option<&str>, subject: Option<&str>, organisation: Option<&str>) -> Option<Owner> {
        Some(Owner {
            issuer: issuer?.to_string(),
            subject: subject?.to_string(),
            organisation: organisation.map(str::to_string),
        })
    }

    fn is(&self, p: &Principal) -> bool {
        self.issuer == p.issuer && self.subject == p.subject
    }
}

/// GET of a deployment, its resources and template: any user of the owner's issuer and
/// organisation, and the issuer's admins.
pub fn can_read(p: Option<&Principal>, owner: Option<&Owner>) -> bool {
    let (Some(p), Some(owner)) = (p, owner) else { return true };
    if owner.is(p) {
        return true;
    }
    if p.issuer != owner.issuer {
        return false;
    }
    p.admin || p.organisation == owner.organisation
}

/// PUT/PATCH/DELETE, actions, `/log`, `/extrainfo`: the owner only (as upstream; admins too
/// are refused).
pub fn can_mutate(p: Option<&Principal>, owner: Option<&Owner>) -> bool {
    let (Some(p), Some(owner)) = (p, owner) else { return true };
    owner.is(p)
}

/// Which deployments `GET /deployments` lists, before `userGroup` and paging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListScope {
    /// Every deployment (no-auth mode).
    All,
    /// The deployments of one user.
    Owner { issuer: String, subject: String },
    /// An admin's view: the deployments whose owner has this issuer and organisation
    /// (`organisation: None` matches owners without one).
    Organisation { issuer: String, organisation: Option<String> },
}

/// The list scope for the `createdBy` query parameter: omitted → admins get their issuer and
/// organisation, others their own deployments; `me`; `<subject>@<issuer>` (another user: admins
/// of that issuer only). Errors are `(400, "Value X for param createdBy is illegal")` and
/// `(403, "Only admin can retrieve deployments for X")`.
pub fn list_scope(p: Option<&Principal>, created_by: Option<&str>) -> Result<ListScope, (StatusCode, String)> {
    let created_by = created_by.filter(|c| !c.is_empty());
    let Some(created_by) = created_by else {
        return Ok(match p {
            None => ListScope::All,
            Some(p) if p.admin => ListScope::Organisation {
                issuer: p.issuer.clone(),
                organisation: p.organisation.clone(),
            },
            Some(p) => own(p),
        });
    };
    if created_by == "me" {
        return Ok(p.map_or(ListScope::All, own));
    }
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new("^([^@]+)@([^@]+)$").expect("valid regex"));
    let Some(caps) = re.captures(created_by) else {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("Value {created_by} for param createdBy is illegal"),
        ));
    };
    let (subject, issuer) = (caps[1].to_string(), caps[2].to_string());
    let allowed = match p {
        None => true,
        Some(p) => p.issuer == issuer && (p.admin || p.subject == subject),
    };
    if !allowed {
        return Err((StatusCode::FORBIDDEN, format!("Only admin can retrieve deployments for {created_by}")));
    }
    Ok(ListScope::Owner { issuer, subject })
}

fn own(p: &Principal) -> ListScope {
    ListScope::Owner { issuer: p.issuer.clone(), subject: p.subject.clone() }
}
