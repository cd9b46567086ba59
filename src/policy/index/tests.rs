//! The index against the whole set: a differential property test over
//! random policy sets, hierarchies and requests, and a few fixed cases on
//! the bundled policies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityUid, Policy, PolicyId, PolicySet,
    Request, Response, RestrictedExpression, SlotId, Template,
};
use proptest::prelude::*;

use super::PolicyIndex;

/// Entities policies may name; `User::"mallory"` is never in the store.
const ENTITIES: &[(&str, &str)] = &[
    ("User", "alice"),
    ("User", "bob"),
    ("User", "carol"),
    ("User", "mallory"),
    ("Group", "g0"),
    ("Group", "g1"),
    ("Group", "g2"),
    ("Group", "g3"),
    ("Doc", "d0"),
    ("Doc", "d1"),
    ("Doc", "d2"),
    ("Folder", "f0"),
    ("Folder", "f1"),
    ("Folder", "f2"),
];
const TYPES: &[&str] = &["User", "Group", "Doc", "Folder"];
/// `view in readonly in all`, `edit in all`; `nope` is not an entity.
const ACTIONS: &[&str] = &["view", "edit", "delete", "readonly", "all", "nope"];
/// Conditions, several of which error for some requests (missing
/// attribute, overflow, attribute of an entity outside the store).
const CONDITIONS: &[&str] = &[
    "",
    "when { principal.level > 2 }",
    "when { context.n > 1 }",
    "unless { resource has owner && resource.owner == principal }",
    "when { principal in Group::\"g1\" }",
    "when { context.n + 9223372036854775800 > 0 }",
    "when { resource.owner.level > 1 }",
    "when { context.flag }",
];

fn pick<T: Copy>(items: &[T], i: u8) -> T {
    items[usize::from(i) % items.len()]
}

/// Entity `i` of the principal side (users and groups) or the resource
/// side (documents and folders); one pick in eight is from all entities.
fn side_uid(resource: bool, i: u8) -> EntityUid {
    let (from, len) = match (i % 8, resource) {
        (7, _) => (0, ENTITIES.len()),
        (_, false) => (0, 8),
        (_, true) => (8, ENTITIES.len() - 8),
    };
    uid(u8::try_from(from + usize::from(i / 8) % len).unwrap())
}

fn uid(i: u8) -> EntityUid {
    let (ty, id) = pick(ENTITIES, i);
    EntityUid::from_str(&format!("{ty}::\"{id}\"")).unwrap()
}

fn action(i: u8) -> EntityUid {
    EntityUid::from_str(&format!("Action::\"{}\"", pick(ACTIONS, i))).unwrap()
}

/// A principal or resource constraint: kind, entity, type.
type Side = (u8, u8, u8);

fn side(var: &str, (kind, e, t): Side) -> String {
    let (e, t) = (side_uid(var == "resource", e), pick(TYPES, t));
    match kind % 6 {
        0 | 5 => var.to_owned(),
        1 => format!("{var} == {e}"),
        2 => format!("{var} in {e}"),
        3 => format!("{var} is {t}"),
        _ => format!("{var} is {t} in {e}"),
    }
}

fn actions((kind, list): &(u8, Vec<u8>)) -> String {
    let named: Vec<String> = list
        .iter()
        .map(|&a| format!("Action::\"{}\"", pick(ACTIONS, a)))
        .collect();
    match kind % 4 {
        0 => "action".into(),
        1 => format!("action == {}", named[0]),
        2 => format!("action in {}", named[0]),
        _ => format!("action in [{}]", named.join(", ")),
    }
}

/// A static policy: forbid?, principal, action, resource, condition.
type StaticSpec = (bool, Side, (u8, Vec<u8>), Side, u8);

fn render(spec: &StaticSpec) -> String {
    let (forbid, p, a, r, c) = spec;
    let effect = if *forbid { "forbid" } else { "permit" };
    let scope = [side("principal", *p), actions(a), side("resource", *r)];
    format!("{effect}({}) {};", scope.join(", "), pick(CONDITIONS, *c))
}

/// A template side: no slot, `== ?slot`, `in ?slot`, `is T in ?slot`.
fn slot_side(var: &str, kind: u8, t: u8) -> String {
    match kind % 4 {
        0 => var.to_owned(),
        1 => format!("{var} == ?{var}"),
        2 => format!("{var} in ?{var}"),
        _ => format!("{var} is {} in ?{var}", pick(TYPES, t)),
    }
}

/// A template: forbid?, principal slot kind, resource slot kind, type,
/// action, condition.
type TemplateSpec = (bool, u8, u8, u8, (u8, Vec<u8>), u8);

fn render_template(spec: &TemplateSpec) -> (String, bool, bool) {
    let (forbid, pk, rk, t, a, c) = spec;
    // A template needs a slot; without one, slot the principal.
    let pk = if pk % 4 == 0 && rk % 4 == 0 { 1 } else { *pk };
    let effect = if *forbid { "forbid" } else { "permit" };
    let scope = [
        slot_side("principal", pk, *t),
        actions(a),
        slot_side("resource", *rk, *t),
    ];
    let text = format!("{effect}({}) {};", scope.join(", "), pick(CONDITIONS, *c));
    (text, pk % 4 != 0, rk % 4 != 0)
}

/// One item of the set, in order: a static policy or a link of template
/// `t` to a principal and a resource.
#[derive(Debug, Clone)]
enum Item {
    Static(StaticSpec),
    Link(u8, u8, u8),
}

fn build_set(templates: &[TemplateSpec], items: &[Item]) -> PolicySet {
    let mut set = PolicySet::new();
    let mut slots = Vec::new();
    for (i, spec) in templates.iter().enumerate() {
        let (text, p, r) = render_template(spec);
        let template = Template::parse(Some(PolicyId::new(format!("t{i}"))), &text).unwrap();
        set.add_template(template).unwrap();
        slots.push((p, r));
    }
    for (i, item) in items.iter().enumerate() {
        let id = PolicyId::new(format!("p{i}"));
        match item {
            Item::Static(spec) => set.add(Policy::parse(Some(id), render(spec)).unwrap()),
            Item::Link(t, p, r) => {
                let at = usize::from(*t) % templates.len();
                let mut values = HashMap::new();
                if slots[at].0 {
                    values.insert(SlotId::principal(), side_uid(false, *p));
                }
                if slots[at].1 {
                    values.insert(SlotId::resource(), side_uid(true, *r));
                }
                set.link(PolicyId::new(format!("t{at}")), id, values)
            }
        }
        .unwrap();
    }
    set
}

/// Random hierarchy: parents of each entity among later ones of related
/// types, `level` on some users, `owner` on some documents.
#[derive(Debug, Clone)]
struct World {
    parents: Vec<Vec<bool>>,
    levels: Vec<Option<i64>>,
    owners: Vec<Option<u8>>,
}

fn may_be_parent(child: &str, parent: &str) -> bool {
    matches!(
        (child, parent),
        ("User" | "Group", "Group") | ("Doc" | "Folder", "Folder")
    )
}

fn entities(world: &World) -> Entities {
    let mut all = Vec::new();
    for (i, &(ty, id)) in ENTITIES.iter().enumerate() {
        if id == "mallory" {
            continue;
        }
        let parents: HashSet<EntityUid> = (i + 1..ENTITIES.len())
            .filter(|&j| may_be_parent(ty, ENTITIES[j].0) && world.parents[i][j])
            .map(|j| uid(u8::try_from(j).unwrap()))
            .collect();
        let mut attrs = HashMap::new();
        if let Some(level) = world.levels[i] {
            attrs.insert("level".to_owned(), RestrictedExpression::new_long(level));
        }
        if let (Some(owner), "Doc") = (world.owners[i], ty) {
            let owner = RestrictedExpression::new_entity_uid(uid(owner % 4));
            attrs.insert("owner".to_owned(), owner);
        }
        all.push(Entity::new(uid(u8::try_from(i).unwrap()), attrs, parents).unwrap());
    }
    all.extend(action_entities());
    Entities::from_entities(all, None).unwrap()
}

fn action_entities() -> Vec<Entity> {
    let a = |name: &str| EntityUid::from_str(&format!("Action::\"{name}\"")).unwrap();
    let with = |name: &str, parents: &[&str]| {
        Entity::new_no_attrs(a(name), parents.iter().map(|p| a(p)).collect())
    };
    vec![
        with("view", &["readonly"]),
        with("readonly", &["all"]),
        with("edit", &["all"]),
        with("delete", &[]),
        with("all", &[]),
    ]
}

/// Principal, action, resource, `context.n`, `context.flag`.
type RequestSpec = (u8, u8, u8, i64, bool);

fn request(spec: &RequestSpec) -> Request {
    let &(p, a, r, n, flag) = spec;
    let context = Context::from_pairs([
        ("n".to_owned(), RestrictedExpression::new_long(n)),
        ("flag".to_owned(), RestrictedExpression::new_bool(flag)),
    ])
    .unwrap();
    Request::new(
        side_uid(false, p),
        action(a),
        side_uid(true, r),
        context,
        None,
    )
    .unwrap()
}

/// Decision, sorted determining policies, errors in order.
fn answer(response: &Response) -> (Decision, Vec<String>, Vec<String>) {
    let diagnostics = response.diagnostics();
    let mut reasons: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
    reasons.sort();
    let errors = diagnostics.errors().map(ToString::to_string).collect();
    (response.decision(), reasons, errors)
}

fn side_spec() -> impl Strategy<Value = Side> {
    (0u8..6, any::<u8>(), any::<u8>())
}

fn action_spec() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (0u8..4, prop::collection::vec(any::<u8>(), 1..3))
}

fn static_spec() -> impl Strategy<Value = StaticSpec> {
    (
        any::<bool>(),
        side_spec(),
        action_spec(),
        side_spec(),
        any::<u8>(),
    )
}

fn template_spec() -> impl Strategy<Value = TemplateSpec> {
    let slots = (0u8..4, 0u8..4, any::<u8>());
    (any::<bool>(), slots, action_spec(), any::<u8>())
        .prop_map(|(f, (p, r, t), a, c)| (f, p, r, t, a, c))
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => static_spec().prop_map(Item::Static),
        1 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(t, p, r)| Item::Link(t, p, r)),
    ]
}

fn world() -> impl Strategy<Value = World> {
    let n = ENTITIES.len();
    let parents = prop::collection::vec(prop::collection::vec(prop::bool::weighted(0.3), n), n);
    let levels = prop::collection::vec(prop::option::of(0i64..5), n);
    let owners = prop::collection::vec(prop::option::of(any::<u8>()), n);
    (parents, levels, owners).prop_map(|(parents, levels, owners)| World {
        parents,
        levels,
        owners,
    })
}

fn request_spec() -> impl Strategy<Value = RequestSpec> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        -2i64..12,
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Indexed evaluation, and evaluation of every policy with the index
    /// off, give Cedar's own authorizer's decision over the whole set: the
    /// same determining policies and the same errors, in the same order.
    #[test]
    fn index_answers_as_the_whole_set(
        templates in prop::collection::vec(template_spec(), 1..4),
        items in prop::collection::vec(item(), 0..40),
        world in world(),
        requests in prop::collection::vec(request_spec(), 1..8),
    ) {
        let set = build_set(&templates, &items);
        let entities = entities(&world);
        let index = PolicyIndex::build(&set);
        prop_assert_eq!(index.len(), items.len());
        for spec in &requests {
            let request = request(spec);
            let whole = Authorizer::new().is_authorized(&request, &set, &entities);
            let indexed = index.is_authorized(&request, &entities);
            prop_assert_eq!(answer(&indexed), answer(&whole), "request {:?}", spec);
            // The index switched off evaluates every policy the same way.
            let all = index.is_authorized_by_all(&request, &entities);
            prop_assert_eq!(answer(&all), answer(&whole), "request {:?}", spec);
        }
    }
}

fn bundled() -> crate::policy::PolicyStore {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    crate::policy::PolicyStore::load(&repo.join("policies"), &[]).unwrap()
}

fn candidate_ids(store: &crate::policy::PolicyStore, request: [&str; 3]) -> Vec<String> {
    let [p, a, r] = request.map(|u| EntityUid::from_str(u).unwrap());
    let picks = store.index.candidates(&p, &a, &r, &store.entities);
    let set = store.index.subset(&picks).unwrap();
    set.policies().map(|p| p.id().to_string()).collect()
}

#[test]
fn a_workload_sees_only_policies_that_can_name_it() {
    let store = bundled();
    let ids = candidate_ids(
        &store,
        [
            r#"Workload::"spiffe://cluster.local/ns/monitoring/sa/prometheus""#,
            r#"Action::"GET""#,
            r#"Path::"/metrics""#,
        ],
    );
    assert!(
        ids.contains(&"prometheus-scrapes-metrics".to_owned()),
        "{ids:?}"
    );
    assert!(ids.contains(&"public-read".to_owned()), "{ids:?}");
    assert!(!ids.contains(&"staff-read-app".to_owned()), "{ids:?}");
    assert!(
        !ids.contains(&"api-connects-to-database".to_owned()),
        "{ids:?}"
    );
    assert!(
        !ids.contains(&"auditors-read-document-42".to_owned()),
        "{ids:?}"
    );
}

#[test]
fn group_ancestors_and_links_are_candidates() {
    let store = bundled();
    let ids = candidate_ids(
        &store,
        [
            r#"Group::"admins""#,
            r#"Action::"document.read""#,
            r#"Document::"42""#,
        ],
    );
    // admins is in staff: the staff grant and the admins grant apply.
    assert!(ids.contains(&"staff-read-documents".to_owned()), "{ids:?}");
    assert!(ids.contains(&"admins-everything".to_owned()), "{ids:?}");
    assert!(
        !ids.contains(&"auditors-read-document-42".to_owned()),
        "{ids:?}"
    );
    let auditors = candidate_ids(
        &store,
        [
            r#"Group::"auditors""#,
            r#"Action::"document.read""#,
            r#"Document::"42""#,
        ],
    );
    assert!(
        auditors.contains(&"auditors-read-document-42".to_owned()),
        "{auditors:?}"
    );
}

#[test]
fn every_bundled_policy_is_indexed_once() {
    let store = bundled();
    let ids: std::collections::HashSet<&str> = store.index.ids().collect();
    assert_eq!(ids.len(), store.index.len());
    assert_eq!(store.index.len() + 1, store.policy_count, "one template");
}
