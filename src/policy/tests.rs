//! Loading tests: every failure names file, line and policy id, and only a
//! complete, valid folder loads.

use std::path::Path;

use super::*;

fn schema() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(repo.join("policies/schema.cedarschema")).unwrap()
}

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), schema()).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn load(dir: &tempfile::TempDir) -> Result<PolicyStore, LoadError> {
    PolicyStore::load(dir.path(), &[])
}

#[test]
fn bundled_policies_load() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let store = PolicyStore::load(&repo.join("policies"), &[]).unwrap();
    assert!(store.policy_count >= 10);
    assert_eq!(store.version.len(), 12);
}

#[test]
fn syntax_error_names_file_and_line() {
    let dir = folder(&[("a.cedar", "permit(principal, action, resource);\n\nnot_a_valid_permit(principal, action, resource);\n")]);
    let err = load(&dir).unwrap_err().to_string();
    assert!(err.contains("a.cedar:3:"), "{err}");
}

#[test]
fn validation_error_names_policy_id_and_line() {
    let text = "@id(\"ok\")\npermit(principal, action, resource);\n\n@id(\"bad\")\npermit(principal, action, resource)\nwhen { principal.nope == 1 };\n";
    let dir = folder(&[("a.cedar", text)]);
    let err = load(&dir).unwrap_err();
    let LoadError::Policy { id, line, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(id, "bad");
    assert!((4..=6).contains(line), "{err}");
}

#[test]
fn duplicate_id_in_one_file_names_both_lines() {
    let text = "@id(\"same\")\npermit(principal, action, resource);\n\n\
                @id(\"same\")\nforbid(principal, action, resource);\n";
    let dir = folder(&[("a.cedar", text)]);
    let err = load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("a.cedar:4: policy `same`: duplicate id, first used at")
            && err.ends_with("a.cedar:1"),
        "{err}"
    );
}

#[test]
fn duplicate_ids_across_files_are_refused() {
    let p = "@id(\"same\")\npermit(principal, action, resource);\n";
    let dir = folder(&[("a.cedar", p), ("b.cedar", p)]);
    let err = load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("b.cedar:1: policy `same`: duplicate id"),
        "{err}"
    );
}

#[test]
fn unnamed_policies_are_named_by_file_and_line() {
    let dir = folder(&[("a.cedar", "// x\npermit(principal, action, resource);\n")]);
    let store = load(&dir).unwrap();
    assert!(store.index.ids().any(|id| id == "a.cedar:2"));
}

#[test]
fn entities_file_may_not_define_request_built_types() {
    let entities = r#"[{"uid":{"type":"User","id":"alice"},"attrs":{"source":"x","entitlements":[]},"parents":[{"type":"Group","id":"admins"}]}]"#;
    let dir = folder(&[
        ("a.cedar", "permit(principal, action, resource);"),
        ("entities.json", entities),
    ]);
    let err = load(&dir).unwrap_err().to_string();
    assert!(err.contains("built from each request"), "{err}");
}

#[test]
fn entities_file_that_is_not_an_array_is_refused() {
    let dir = folder(&[
        ("a.cedar", "permit(principal, action, resource);"),
        ("entities.json", "{}"),
    ]);
    assert!(matches!(load(&dir), Err(LoadError::Entities { .. })));
}

#[test]
fn missing_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.cedar"),
        "permit(principal, action, resource);",
    )
    .unwrap();
    let err = load(&dir).unwrap_err().to_string();
    assert!(err.contains("schema.cedarschema"), "{err}");
}

#[test]
fn deny_annotation_on_permit_or_bad_status_is_refused() {
    let on_permit = "@http_status(\"401\")\npermit(principal, action, resource);";
    assert!(load(&folder(&[("a.cedar", on_permit)])).is_err());
    let bad = "@http_status(\"200\")\nforbid(principal, action, resource);";
    assert!(load(&folder(&[("a.cedar", bad)])).is_err());
}

#[test]
fn route_action_must_exist_in_schema() {
    let dir = folder(&[("a.cedar", "permit(principal, action, resource);")]);
    let route: RouteConfig = serde_yaml_ng::from_str("path: /x\naction: nope.read\n").unwrap();
    let err = PolicyStore::load(dir.path(), &[route])
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.read"), "{err}");
}

#[test]
fn hidden_files_and_configmap_links_are_handled() {
    let dir = folder(&[("a.cedar", "permit(principal, action, resource);")]);
    std::fs::create_dir(dir.path().join("..2026_data")).unwrap();
    std::fs::write(dir.path().join(".hidden.cedar"), "garbage").unwrap();
    assert!(load(&dir).is_ok());
}

#[test]
fn version_changes_with_content() {
    let a = load(&folder(&[(
        "a.cedar",
        "permit(principal, action, resource);",
    )]))
    .unwrap();
    let b = load(&folder(&[(
        "a.cedar",
        "forbid(principal, action, resource);",
    )]))
    .unwrap();
    assert_ne!(a.version, b.version);
}

const TEMPLATE: &str = "@id(\"t\")\npermit(principal in ?principal, action == Action::\"document.read\", resource == ?resource);\n";

#[test]
fn links_file_links_templates_into_the_set() {
    let links = "links:\n  - id: g-reads-1\n    template: t\n    principal: { type: Group, id: g }\n    resource: { type: Document, id: \"1\" }\n";
    let store = load(&folder(&[("a.cedar", TEMPLATE), ("links.yaml", links)])).unwrap();
    assert!(store.index.ids().any(|id| id == "g-reads-1"));
}

#[test]
fn link_to_unknown_template_names_the_links_file_line() {
    let links = "links:\n  - id: first\n    template: t\n    principal: { type: Group, id: g }\n    resource: { type: Document, id: \"1\" }\n  - id: broken\n    template: nope\n";
    let err = load(&folder(&[("a.cedar", TEMPLATE), ("links.yaml", links)])).unwrap_err();
    assert!(
        err.to_string().contains("links.yaml:6: policy `broken`"),
        "{err}"
    );
}

#[test]
fn link_that_fails_validation_is_refused() {
    // Endpoint is not a resource that `document.read` applies to.
    let links = "links:\n  - id: bad\n    template: t\n    principal: { type: Group, id: g }\n    resource: { type: Endpoint, id: \"x\" }\n";
    assert!(load(&folder(&[("a.cedar", TEMPLATE), ("links.yaml", links)])).is_err());
}

#[test]
fn unformatted_policy_files_are_reported() {
    let dir = folder(&[("a.cedar", "permit(principal,action,resource);")]);
    let differ = format::unformatted(dir.path()).unwrap();
    assert_eq!(differ.len(), 1);
    std::fs::write(&differ[0].0, &differ[0].1).unwrap();
    assert!(format::unformatted(dir.path()).unwrap().is_empty());
}

/// A file of `n` policies, three lines each, with `bad` at policy `at`
/// (0-based): it starts on line `3 * at + 1`.
fn many_policies(n: usize, at: usize, bad: &str) -> String {
    (0..n)
        .map(|i| match i == at {
            true => format!("@id(\"p{i}\")\n{bad}\n\n"),
            false => format!("@id(\"p{i}\")\npermit(principal, action, resource);\n\n"),
        })
        .collect()
}

#[test]
fn batch_boundaries_keep_syntax_error_lines() {
    let at = statements::BATCH * 2 + 5;
    let text = many_policies(
        statements::BATCH * 3,
        at,
        "permit(principal, action, resource) when { ;",
    );
    let dir = folder(&[("big.cedar", &text)]);
    let err = load(&dir).unwrap_err().to_string();
    let want = format!("big.cedar:{}:", 3 * at + 2);
    assert!(err.contains(&want), "{want} in {err}");
}

#[test]
fn batch_boundaries_keep_validation_error_lines_and_ids() {
    let at = statements::BATCH + 1;
    let bad = "permit(principal, action, resource)\nwhen { principal.nope == 1 };";
    let text = many_policies(statements::BATCH * 2, at, bad);
    let dir = folder(&[("big.cedar", &text)]);
    let err = load(&dir).unwrap_err();
    let LoadError::Policy { id, line, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(id, &format!("p{at}"));
    assert_eq!(*line, 3 * at + 3, "{err}");
}

#[test]
fn batched_parse_loads_every_policy_with_its_line() {
    let n = statements::BATCH * 3 + 7;
    let text = many_policies(n, usize::MAX, "");
    let dir = folder(&[("big.cedar", &text)]);
    let store = load(&dir).unwrap();
    assert_eq!(store.policy_count, n);
    for i in [0, statements::BATCH - 1, statements::BATCH, n - 1] {
        let id = PolicyId::new(format!("p{i}"));
        assert_eq!(store.origins[&id].1, 3 * i + 1, "p{i}");
    }
}

#[test]
fn a_reload_still_validates_what_changed() {
    let n = statements::BATCH * 2;
    let dir = folder(&[("big.cedar", &many_policies(n, usize::MAX, ""))]);
    let previous = load(&dir).unwrap();
    // The second batch changes and is now wrong; the first is as before.
    let bad = "permit(principal, action, resource)\nwhen { principal.nope == 1 };";
    let text = many_policies(n, statements::BATCH + 3, bad);
    std::fs::write(dir.path().join("big.cedar"), text).unwrap();
    let err = PolicyStore::reload(dir.path(), &[], &previous).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("p{}", statements::BATCH + 3)),
        "{err}"
    );
}

#[test]
fn a_schema_change_validates_unchanged_policies_again() {
    let n = statements::BATCH + 1;
    let uses_email = "permit(principal is User, action, resource)\nwhen { principal has email && principal.email like \"*@example.test\" };";
    let dir = folder(&[("big.cedar", &many_policies(n, 0, uses_email))]);
    let previous = load(&dir).unwrap();
    // Same policy text, a schema without `User.email`: the unchanged batch
    // must be validated again, and fail.
    let schema = schema().replace("email?: String,", "");
    assert_ne!(schema, self::schema(), "the test schema must lose `email`");
    std::fs::write(dir.path().join("schema.cedarschema"), schema).unwrap();
    let err = PolicyStore::reload(dir.path(), &[], &previous).unwrap_err();
    assert!(err.to_string().contains("p0"), "{err}");
}

/// Every policy of a store as `id file:line text`, sorted.
fn described(store: &PolicyStore) -> Vec<String> {
    let mut all: Vec<String> = store
        .index
        .policies()
        .map(|p| {
            let id = PolicyId::new(p.id().as_ref());
            format!("{id} {:?} {p}", store.origin(&id))
        })
        .chain(
            store
                .templates()
                .map(|t| format!("{} {:?} {t}", t.id(), store.origin(t.id()))),
        )
        .collect();
    all.sort();
    all
}

#[test]
fn a_reload_gives_what_a_fresh_load_gives() {
    let n = statements::BATCH * 3;
    let unnamed = "permit(principal, action, resource);\n";
    // One policy of the (unchanged) second batch has no `@id`: reused, it
    // must still get the id of its new line.
    let second = statements::BATCH + 5;
    let policies = many_policies(n, usize::MAX, "").replace(&format!("@id(\"p{second}\")"), "");
    let text = format!("{unnamed}{policies}{unnamed}");
    let dir = folder(&[("big.cedar", &text)]);
    let previous = load(&dir).unwrap();
    // Lines move (unnamed policies get new ids) and the last batch changes.
    let moved = format!("// a new first line\n\n{text}forbid(principal, action, resource);\n");
    std::fs::write(dir.path().join("big.cedar"), moved).unwrap();
    let reloaded = PolicyStore::reload(dir.path(), &[], &previous).unwrap();
    let fresh = load(&dir).unwrap();
    assert_eq!(described(&reloaded), described(&fresh));
    assert!(reloaded.origin(&PolicyId::new("big.cedar:3")).is_some());
    let line = 1 + 3 * second + 2 + 2;
    let moved_id = PolicyId::new(format!("big.cedar:{line}"));
    assert!(
        reloaded.origin(&moved_id).is_some(),
        "{:?}",
        described(&reloaded).iter().find(|d| !d.starts_with('p'))
    );
    assert_eq!(reloaded.version, fresh.version);
    assert_eq!(reloaded.policy_count, n + 3);
}

/// Field case 12 (`[POLICY-LOAD]`) with reuse: a half-written file whose
/// first batch is unchanged must still be refused as a whole.
#[test]
fn policy_load_truncated_file_on_reload_is_refused_with_reused_batches() {
    let text = many_policies(statements::BATCH * 2, usize::MAX, "");
    let dir = folder(&[("big.cedar", &text)]);
    let previous = load(&dir).unwrap();
    let cut = text.len() * 3 / 4;
    let half = &text[..text[..cut].rfind("permit").unwrap() + 10];
    std::fs::write(dir.path().join("big.cedar"), half).unwrap();
    let err = PolicyStore::reload(dir.path(), &[], &previous).unwrap_err();
    assert!(matches!(err, LoadError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("big.cedar:"), "{err}");
}
