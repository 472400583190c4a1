//! The starter policy `leadroute policy init` and the demo write: fitted to the mirrored
//! owners (a pool of active users), account-based routing for matched accounts, an
//! exception for ambiguous matches and for unmatched records without a country, two
//! country territories with round-robin pools and an overflow pool. Pure.

use leadroute_crm::{OwnerKind, OwnerRecord};

/// Reps the starter policy takes (the first active users by id).
const MAX_REPS: usize = 8;
/// Fewer active users than this cannot fill two territories and an overflow pool.
const MIN_REPS: usize = 3;

#[derive(Debug, thiserror::Error)]
#[error(
    "the mirror has {active} active users; a starter policy needs at least {MIN_REPS}: \
     run `leadroute sync` first, or write the policy by hand (see config/policies/)"
)]
pub struct TooFewOwners {
    pub active: usize,
}

/// The policy text and the number of reps in it. `written_by` names the command in the
/// file's header comment.
pub fn starter_policy(
    owners: &[OwnerRecord],
    written_by: &str,
) -> Result<(String, usize), TooFewOwners> {
    let mut users: Vec<&OwnerRecord> = owners
        .iter()
        .filter(|o| o.active && o.kind == OwnerKind::User)
        .collect();
    users.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let active = users.len();
    users.truncate(MAX_REPS);
    if users.len() < MIN_REPS {
        return Err(TooFewOwners { active });
    }
    let mut s = format!(
        "# Written by `{written_by}` for the mirrored org's owners.\n\
         # Check it with `leadroute policy check THIS_FILE`.\n\n\
         [settings]\nname = \"starter\"\nsticky = true\nmanual_override_days = 7\n\n",
    );
    for (i, owner) in users.iter().enumerate() {
        s.push_str(&format!(
            "[reps.rep{i}]\nowner = {}\nname = {}\n\n",
            toml_str(owner.id.as_str()),
            toml_str(&owner.name)
        ));
    }
    let list = |range: std::ops::Range<usize>| -> String {
        range
            .map(|i| format!("\"rep{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let n = users.len();
    let half = n / 2;
    s.push_str(&format!(
        "[territories.emea]\ncountries = [\"DE\", \"AT\", \"CH\", \"FR\", \"GB\", \"IE\", \"NL\", \"ES\", \"IT\", \"SE\"]\nreps = [{emea}]\n\n\
         [territories.north_america]\ncountries = [\"US\", \"CA\"]\nreps = [{na}]\n\n\
         [pools.emea]\nstrategy = \"round_robin\"\nmembers = [{emea}]\n\n\
         [pools.north_america]\nstrategy = \"round_robin\"\nmembers = [{na}]\n\n\
         [pools.overflow]\nstrategy = \"round_robin\"\nmembers = [{all}]\n\n\
         [[rules]]\nname = \"account-based\"\nwhen = [{{ match = \"matched\" }}, {{ field = \"account.owner\", exists = true }}]\naction = \"account_owner\"\n\n\
         [[rules]]\nname = \"ambiguous-match\"\nwhen = [{{ match = \"ambiguous\" }}]\naction = \"exception\"\nkind = \"ambiguous_match\"\nreason = \"several accounts fit: pick one by hand\"\n\n\
         [[rules]]\nname = \"no-country\"\nwhen = [{{ match = \"unmatched\" }}, {{ field = \"country\", exists = false }}]\naction = \"exception\"\nkind = \"needs_country\"\nreason = \"no account and no country: route by hand\"\n\n\
         [[rules]]\nname = \"emea\"\nwhen = [{{ territory = \"emea\" }}]\naction = \"pool\"\npool = \"emea\"\n\n\
         [[rules]]\nname = \"north-america\"\nwhen = [{{ territory = \"north_america\" }}]\naction = \"pool\"\npool = \"north_america\"\n\n\
         [default]\naction = \"pool\"\npool = \"overflow\"\n",
        emea = list(0..half),
        na = list(half..n),
        all = list(0..n),
    ));
    Ok((s, n))
}

/// A TOML basic string: quoted, with backslashes, quotes and control characters escaped.
pub fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadroute_crm::OwnerId;

    fn owner(id: &str, active: bool) -> OwnerRecord {
        OwnerRecord {
            id: OwnerId::new(id),
            kind: OwnerKind::User,
            email: None,
            name: format!("Rep \"{id}\""),
            active,
            teams: Vec::new(),
            time_zone: None,
            manager_id: None,
            user_id: None,
            updated_at: None,
        }
    }

    #[test]
    fn the_starter_policy_checks_clean_and_uses_only_active_users() {
        let owners: Vec<OwnerRecord> = (1..=5).map(|i| owner(&i.to_string(), i != 2)).collect();
        let (text, reps) = starter_policy(&owners, "leadroute policy init").unwrap();
        assert_eq!(reps, 4);
        let (policy, _) = crate::policy::parse("starter.toml", &text)
            .unwrap_or_else(|issues| panic!("{issues:#?}\n{text}"));
        assert!(
            !text.contains("owner = \"2\""),
            "an inactive user became a rep"
        );
        assert!(text.contains("match = \"ambiguous\""));
        assert!(!policy.version.is_empty());
    }

    #[test]
    fn too_few_active_users_is_an_error_saying_what_to_do() {
        let owners = vec![owner("1", true), owner("2", false)];
        let err = starter_policy(&owners, "x").unwrap_err();
        assert_eq!(err.active, 1);
        assert!(err.to_string().contains("leadroute sync"));
    }
}
