//! The shared field cases (../shared/cases/public-cases.md), one module per
//! kind of fault, each case restated as CheckRequests against its policy.

use crate::fixture::*;

/// `[PATH]` cases 1–3: the path a policy sees is the path the backend serves.
mod path_normalisation {
    use super::*;

    const STAFF_V1: &str = r#"
        permit(principal in Group::"staff", action == Action::"GET", resource)
        when { resource.path like "/v1/*" };
    "#;

    fn staff(path: &str) -> envoy_types::ext_authz::v3::pb::CheckRequest {
        http(
            "GET",
            path,
            &[("remote-user", "alice"), ("remote-groups", "staff")],
        )
    }

    #[tokio::test]
    async fn path_parameter_dot_segment_is_refused() {
        let f = Fixture::new(STAFF_V1);
        for path in [
            "/v1/..;/internal/reports/5",
            "/v1/%2e%2e;/internal/x",
            "/v1/.;/x",
        ] {
            assert_eq!(verdict(&f.check(staff(path)).await), BAD_REQUEST, "{path}");
        }
        assert_eq!(verdict(&f.check(staff("/v1/reports/5")).await), ALLOW);
        assert_eq!(
            verdict(&f.check(staff("/v1/../internal/reports/5")).await),
            DENY
        );
    }

    const ADMIN_FORBID: &str = r#"
        permit(principal, action, resource);
        forbid(principal, action, resource == Path::"/admin")
        unless { principal in Group::"admins" };
    "#;

    #[tokio::test]
    async fn query_string_is_not_part_of_the_path() {
        let f = Fixture::new(ADMIN_FORBID);
        let bob = |path| {
            http(
                "GET",
                path,
                &[("remote-user", "bob"), ("remote-groups", "users")],
            )
        };
        for path in ["/admin?x=1", "/admin/", "/admin;x=1", "//admin", "/./admin"] {
            assert_eq!(verdict(&f.check(bob(path)).await), DENY, "{path}");
        }
        let admin = http(
            "GET",
            "/admin",
            &[("remote-user", "ann"), ("remote-groups", "admins")],
        );
        assert_eq!(verdict(&f.check(admin).await), ALLOW);
    }

    #[tokio::test]
    async fn percent_encoded_unreserved_characters_are_decoded_before_matching() {
        let f = Fixture::new(
            r#"
            permit(principal, action, resource);
            forbid(principal is Anonymous, action, resource is Path)
            when { resource.path like "/api/*" };
        "#,
        );
        for path in [
            "/%61pi/0/buckets/x",
            "/api/%70rojects/1",
            "/%2561pi/x/../../api/x",
        ] {
            let request = from_peer(http("POST", path, &[]), "");
            assert_eq!(verdict(&f.check(request).await), UNAUTHENTICATED, "{path}");
        }
        for path in ["/api%2Fx", "/api%5Cx", "/api%00"] {
            let request = from_peer(http("POST", path, &[]), "");
            assert_eq!(verdict(&f.check(request).await), BAD_REQUEST, "{path}");
        }
    }
}

/// `[METHOD]` case 4: letter case cannot evade a method rule.
mod method_case {
    use super::*;

    #[tokio::test]
    async fn lower_case_method_meets_the_upper_case_forbid() {
        let f = Fixture::new(
            r#"permit(principal, action, resource);
               forbid(principal, action == Action::"DELETE", resource);"#,
        );
        for method in ["delete", "Delete", "DELETE"] {
            let request = http(method, "/items/7", &[("remote-user", "bob")]);
            assert_eq!(verdict(&f.check(request).await), DENY, "{method}");
        }
    }

    #[tokio::test]
    async fn method_that_is_not_a_token_is_refused() {
        let f = Fixture::new("permit(principal, action, resource);");
        for method in ["GE T", "GET\r\n", ""] {
            let request = http(method, "/items/7", &[]);
            assert_eq!(verdict(&f.check(request).await), BAD_REQUEST, "{method:?}");
        }
    }
}

/// `[HEADER]` `[IDENTITY]` cases 5–8: list headers split per source,
/// without phantom groups, and names kept byte for byte.
mod identity_headers {
    use super::*;

    const ADMINS: &str = r#"permit(principal in Group::"admins", action, resource);"#;

    #[tokio::test]
    async fn comma_joined_repeated_group_headers_are_split() {
        let f = Fixture::new(ADMINS);
        for groups in ["admins,dev", "admins, dev", "dev , admins"] {
            let request = http(
                "GET",
                "/x",
                &[("remote-user", "alice"), ("remote-groups", groups)],
            );
            assert_eq!(verdict(&f.check(request).await), ALLOW, "{groups}");
        }
    }

    #[tokio::test]
    async fn authentik_groups_are_split_on_pipe_not_comma() {
        let f = Fixture::new(ADMINS);
        let pipe = http(
            "GET",
            "/x",
            &[
                ("x-authentik-username", "alice"),
                ("x-authentik-groups", "admins|developers"),
            ],
        );
        assert_eq!(verdict(&f.check(pipe).await), ALLOW);
        let comma = http(
            "GET",
            "/x",
            &[
                ("x-authentik-username", "alice"),
                ("x-authentik-groups", "admins,developers"),
            ],
        );
        assert_eq!(
            verdict(&f.check(comma).await),
            DENY,
            "`admins,developers` is one group"
        );
    }

    #[tokio::test]
    async fn empty_or_sloppy_group_list_creates_no_phantom_group() {
        let f = Fixture::new(
            r#"permit(principal in Group::"ops", action, resource);
               permit(principal in Group::"", action == Action::"GET", resource);"#,
        );
        for groups in ["", " ", ",", " , "] {
            let request = http(
                "GET",
                "/x",
                &[("remote-user", "carol"), ("remote-groups", groups)],
            );
            assert_eq!(verdict(&f.check(request).await), DENY, "{groups:?}");
        }
        for groups in ["ops,,dev", "ops, dev,"] {
            let request = http(
                "GET",
                "/x",
                &[("remote-user", "carol"), ("remote-groups", groups)],
            );
            assert_eq!(verdict(&f.check(request).await), ALLOW, "{groups:?}");
        }
    }

    #[tokio::test]
    async fn non_ascii_user_names_are_kept_byte_for_byte() {
        let f = Fixture::new(
            r#"permit(principal == User::"zoë", action, resource);
               permit(principal == User::"иван", action, resource);"#,
        );
        let zoe = http(
            "GET",
            "/x",
            &[
                ("x-authentik-username", "zoë"),
                ("x-authentik-name", "Zoë Example"),
            ],
        );
        assert_eq!(verdict(&f.check(zoe).await), ALLOW);
        let ivan = http("GET", "/x", &[("remote-user", "иван")]);
        assert_eq!(verdict(&f.check(ivan).await), ALLOW);
        // NFD `zoe` + combining diaeresis is a different user: no normalisation.
        let nfd = http("GET", "/x", &[("remote-user", "zoe\u{308}")]);
        assert_eq!(verdict(&f.check(nfd).await), DENY);
    }
}

/// `[ESCAPE]` cases 9–10: ids are typed values, never Cedar source.
mod entity_id_escaping {
    use super::*;

    #[tokio::test]
    async fn quote_and_backslash_ids_round_trip_exactly() {
        let f = Fixture::new(
            r#"permit(principal == User::"bob\"jr", action, resource);
               permit(principal in Group::"eng\\ops", action, resource);"#,
        );
        let quote = http("GET", "/x", &[("remote-user", "bob\"jr")]);
        assert_eq!(verdict(&f.check(quote).await), ALLOW);
        let backslash = http(
            "GET",
            "/x",
            &[("remote-user", "dan"), ("remote-groups", "eng\\ops")],
        );
        assert_eq!(verdict(&f.check(backslash).await), ALLOW);
    }

    #[tokio::test]
    async fn injection_and_control_characters_are_just_other_users() {
        let f = Fixture::new(r#"permit(principal == User::"alice", action, resource);"#);
        for name in [
            "ali\"ce",
            "al\\ice",
            "ali\u{7}ce",
            "alice\u{200b}",
            "x\" } ; permit(principal) ; // ",
        ] {
            let request = http("GET", "/x", &[("remote-user", name)]);
            assert_eq!(verdict(&f.check(request).await), DENY, "{name:?}");
        }
        // A comma means Envoy joined repeated headers: ambiguous, so 400.
        let injection = "x\" } ; permit(principal, action, resource) ; // ";
        let request = http("GET", "/x", &[("remote-user", injection)]);
        assert_eq!(verdict(&f.check(request).await), BAD_REQUEST);
        let alice = http("GET", "/x", &[("remote-user", "alice")]);
        assert_eq!(verdict(&f.check(alice).await), ALLOW);
    }
}

/// `[CEDAR]` `[FAILURE-MODE]` case 11: an erroring forbid never lets a
/// request through.
mod erroring_policy {
    use super::*;
    use cedar_ext_authz::policy::{LoadError, PolicyStore};

    #[test]
    fn type_error_in_a_forbid_is_rejected_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let policies = "permit(principal, action, resource);\n\
             @id(\"no-writes\")\n\
             forbid(principal, action, resource) when { context.method in [\"DELETE\", \"PUT\"] };\n";
        write_policies(dir.path(), &schema(), policies, None);
        let err = PolicyStore::load(dir.path(), &[]).unwrap_err();
        let LoadError::Policy { id, line, .. } = &err else {
            panic!("expected a policy error, got {err}");
        };
        assert_eq!((id.as_str(), *line), ("no-writes", 3), "{err}");
    }

    /// Overflow passes validation but fails at evaluation.
    const OVERFLOWING_FORBID: &str = r#"
        permit(principal, action, resource);
        @id("overflowing-forbid")
        forbid(principal, action, resource)
        when { context has port && context.port * 9223372036854775807 > 0 };
    "#;

    #[tokio::test]
    async fn evaluation_error_in_a_forbid_denies() {
        let f = Fixture::new(OVERFLOWING_FORBID);
        let mut request = http("DELETE", "/items/1", &[("remote-user", "bob")]);
        http_mut(&mut request).host = "api.example.test:8080".into();
        assert_eq!(verdict(&f.check(request).await), DENY);
    }

    #[tokio::test]
    async fn skip_mode_follows_cedar_semantics_when_chosen() {
        let f = Fixture::with_config(
            OVERFLOWING_FORBID,
            "decision:\n  on_evaluation_error: skip\n",
        );
        let mut request = http("DELETE", "/items/1", &[("remote-user", "bob")]);
        http_mut(&mut request).host = "api.example.test:8080".into();
        assert_eq!(verdict(&f.check(request).await), ALLOW);
    }
}

/// `[IDENTITY]` `[MISSING-ATTR]` case 13: only a real SPIFFE id is a workload.
mod spiffe_principal {
    use super::*;

    const MONITORING: &str = r#"
        permit(principal, action, resource)
        when { context has spiffe_id && context.spiffe_id like "spiffe://mesh.example.test/ns/monitoring/*" };
        forbid(principal, action, resource)
        when { context has spiffe_id && context.spiffe_id like "spiffe://mesh.example.test/ns/untrusted/*" };
    "#;

    #[tokio::test]
    async fn missing_empty_or_non_spiffe_peer_is_denied() {
        let f = Fixture::new(MONITORING);
        for principal in ["urn:corp:host:web-1", ""] {
            let request = from_peer(http("GET", "/internal/metrics", &[]), principal);
            let (code, _) = verdict(&f.check(request).await);
            assert_ne!(code, 0, "{principal:?}");
        }
        let mut no_source = http("GET", "/internal/metrics", &[]);
        no_source.attributes.as_mut().unwrap().source = None;
        assert_ne!(verdict(&f.check(no_source).await).0, 0);
        let prom = "spiffe://mesh.example.test/ns/monitoring/sa/prom";
        let request = from_peer(http("GET", "/internal/metrics", &[]), prom);
        assert_eq!(verdict(&f.check(request).await), ALLOW);
    }
}

/// `[MISSING-ATTR]` case 14: a network-filter check still gets a decision.
mod network_filter {
    use super::*;
    use envoy_types::ext_authz::v3::pb::CheckRequest;
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;

    const DB: &str = r#"
        permit(principal == Workload::"spiffe://mesh.example.test/ns/app/sa/api",
               action == Action::"tcp_connect", resource);
    "#;

    fn tcp(principal: &str) -> CheckRequest {
        let mut destination = peer("", "10.0.0.9", 5432);
        destination.principal = String::new();
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(peer(principal, "10.0.0.5", 40123)),
                destination: Some(destination),
                tls_session: Some(Default::default()),
                ..Default::default()
            }),
        }
    }

    #[tokio::test]
    async fn tcp_check_without_http_is_decided_without_http_response() {
        let f = Fixture::new(DB);
        let ok = f
            .check(tcp("spiffe://mesh.example.test/ns/app/sa/api"))
            .await;
        assert_eq!(verdict(&ok), (0, 0));
        for principal in ["spiffe://mesh.example.test/ns/app/sa/web", ""] {
            let denied = f.check(tcp(principal)).await;
            assert_eq!(verdict(&denied).0, 7, "{principal:?}");
            assert!(denied.http_response.is_none());
        }
    }

    #[tokio::test]
    async fn http_part_with_every_field_empty_is_a_network_check() {
        let f = Fixture::new(DB);
        let mut request = tcp("spiffe://mesh.example.test/ns/app/sa/api");
        request.attributes.as_mut().unwrap().request = Some(Default::default());
        assert_eq!(verdict(&f.check(request).await), (0, 0));
    }
}

/// `[HEADER]` case 15: host with port, case, IPv6 and `:authority`.
mod host_header {
    use super::*;

    #[tokio::test]
    async fn host_is_normalised_before_matching() {
        let f = Fixture::new(
            r#"permit(principal, action, resource is Path)
               when { resource.host == "api.example.test" };"#,
        );
        let cases = [
            ("api.example.test:8080", None, ALLOW),
            ("API.Example.Test", None, ALLOW),
            ("[2001:db8::1]:8443", None, UNAUTHENTICATED),
            ("", Some("api.example.test"), ALLOW),
            ("api.example.test", None, ALLOW),
            ("::::", None, BAD_REQUEST),
            ("host:notaport", None, BAD_REQUEST),
        ];
        for (host, authority, want) in cases {
            let mut headers = vec![];
            if let Some(a) = authority {
                headers.push((":authority", a));
            }
            let mut request = from_peer(http("GET", "/x", &headers), "");
            http_mut(&mut request).host = host.into();
            assert_eq!(verdict(&f.check(request).await), want, "{host:?}");
        }
    }
}

/// `[GRPC]` case 16: gRPC service and method for policies; bare denies.
mod grpc_requests {
    use super::*;

    const GET_ONLY: &str = r#"
        permit(principal, action, resource)
        when { context has grpc && context.grpc.service == "shop.v1.Orders" && context.grpc.method == "Get" };
    "#;

    fn call(path: &str, content_type: &str) -> envoy_types::ext_authz::v3::pb::CheckRequest {
        http(
            "POST",
            path,
            &[
                ("content-type", content_type),
                ("te", "trailers"),
                ("remote-user", "bob"),
            ],
        )
    }

    #[tokio::test]
    async fn grpc_method_is_visible_and_deny_has_no_body() {
        let f = Fixture::new(GET_ONLY);
        let get = f
            .check(call("/shop.v1.Orders/Get", "application/grpc+proto"))
            .await;
        assert_eq!(verdict(&get), ALLOW);
        let cancel = f
            .check(call("/shop.v1.Orders/Cancel", "application/grpc"))
            .await;
        assert_eq!(verdict(&cancel), DENY);
        let Some(envoy_types::ext_authz::v3::pb::HttpResponse::DeniedResponse(denied)) =
            cancel.http_response
        else {
            panic!("deny without denied_response");
        };
        assert!(denied.body.is_empty());
        let web = f
            .check(call("/shop.v1.Orders/Get", "application/grpc-web-text"))
            .await;
        assert_eq!(verdict(&web), ALLOW);
    }

    #[tokio::test]
    async fn malformed_grpc_path_or_json_content_type_has_no_grpc_attribute() {
        let f = Fixture::new(GET_ONLY);
        let bare = f.check(call("/shop.v1.Orders", "application/grpc")).await;
        assert_eq!(verdict(&bare), DENY);
        let json = f
            .check(call("/shop.v1.Orders/Get", "application/json"))
            .await;
        assert_eq!(verdict(&json), DENY);
    }
}

/// `[RESPONSE]` case 18: every deny carries an explicit HTTP status.
mod deny_status {
    use super::*;

    #[tokio::test]
    async fn every_deny_path_sets_http_status_and_matching_code() {
        let f = Fixture::new(
            r#"forbid(principal is Anonymous, action in Action::"write", resource);
               @id("overflow") forbid(principal, action, resource)
               when { context has port && context.port * 9223372036854775807 > 0 };"#,
        );
        let mut overflow = http("GET", "/x", &[("remote-user", "bob")]);
        http_mut(&mut overflow).host = "h.test:9".into();
        let requests = [
            (http("GET", "/x", &[("remote-user", "bob")]), DENY),
            (from_peer(http("POST", "/x", &[]), ""), UNAUTHENTICATED),
            (http("GET", "/a%2Fb", &[]), BAD_REQUEST),
            (http("GET", "/x", &[("remote-user", "a,b")]), BAD_REQUEST),
            (overflow, DENY),
        ];
        for (request, want) in requests {
            let response = f.check(request).await;
            assert_eq!(verdict(&response), want);
        }
    }
}

/// `[RESPONSE]` `[HEADER]` case 19: upstream identity headers cannot be forged.
mod upstream_headers {
    use super::*;
    use envoy_types::ext_authz::v3::pb::{HeaderAppendAction, HttpResponse, OkHttpResponse};

    fn ok(response: envoy_types::ext_authz::v3::pb::CheckResponse) -> OkHttpResponse {
        match response.http_response {
            Some(HttpResponse::OkResponse(ok)) => ok,
            other => panic!("expected allow, got {other:?}"),
        }
    }

    fn header<'a>(
        ok: &'a OkHttpResponse,
        name: &str,
    ) -> Option<&'a envoy_types::ext_authz::v3::pb::HeaderValueOption> {
        ok.headers
            .iter()
            .find(|h| h.header.as_ref().is_some_and(|h| h.key == name))
    }

    #[tokio::test]
    async fn identity_headers_overwrite_forged_copies() {
        let f = Fixture::new("permit(principal, action, resource);");
        let request = http(
            "GET",
            "/x",
            &[
                ("remote-user", "alice"),
                ("remote-groups", "ops,dev"),
                ("x-auth-user", "mallory"),
                ("x-auth-groups", "admins"),
            ],
        );
        let ok = ok(f.check(request).await);
        let user = header(&ok, "x-auth-user").unwrap();
        assert_eq!(user.header.as_ref().unwrap().value, "alice");
        assert_eq!(
            user.append_action,
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32
        );
        let groups = header(&ok, "x-auth-groups").unwrap();
        assert_eq!(groups.header.as_ref().unwrap().value, "ops,dev");
        assert_eq!(
            groups.append_action,
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32
        );
    }

    #[tokio::test]
    async fn anonymous_allow_removes_client_identity_headers() {
        let f = Fixture::new("permit(principal, action, resource);");
        let request = from_peer(
            http(
                "GET",
                "/x",
                &[("remote-user", "alice"), ("x-auth-user", "mallory")],
            ),
            "spiffe://cluster.local/ns/app/sa/web",
        );
        let ok = ok(f.check(request).await);
        for removed in ["x-auth-groups", "remote-user"] {
            assert!(
                ok.headers_to_remove.iter().any(|h| h == removed),
                "{removed}"
            );
        }
        let user = header(&ok, "x-auth-user").unwrap();
        assert_eq!(
            user.header.as_ref().unwrap().value,
            "spiffe://cluster.local/ns/app/sa/web"
        );
    }
}

/// `[BODY]` `[LOAD]` case 20: large messages are decided, oversized denied.
mod request_size {
    use super::*;

    #[tokio::test]
    async fn oversized_check_request_is_a_413_deny() {
        let f = Fixture::with_config(
            "permit(principal, action, resource);",
            "request:\n  max_request_bytes: 1000\n",
        );
        let mut request = http("POST", "/upload", &[("remote-user", "u")]);
        http_mut(&mut request).body = "x".repeat(2000);
        assert_eq!(verdict(&f.check(request).await), (7, 413));
    }

    #[tokio::test]
    async fn partial_body_is_flagged_and_same_id_decides_the_same() {
        let f = Fixture::new(
            r#"permit(principal, action, resource) when { context has body_partial && !context.body_partial };"#,
        );
        let mut partial = http(
            "POST",
            "/upload",
            &[("remote-user", "u"), ("x-envoy-auth-partial-body", "true")],
        );
        http_mut(&mut partial).id = "17".into();
        assert_eq!(verdict(&f.check(partial.clone()).await), DENY);
        assert_eq!(verdict(&f.check(partial).await), DENY);
        let whole = http("POST", "/upload", &[("remote-user", "u")]);
        assert_eq!(verdict(&f.check(whole).await), ALLOW);
    }
}

/// `[CTX-EXT]` case 21: per-route context extensions, never client headers.
mod context_extensions {
    use super::*;

    #[tokio::test]
    async fn route_context_extensions_select_the_policy_domain() {
        let f = Fixture::new(
            r#"permit(principal in Group::"finance", action, resource)
               when { context.ext has app && context.ext.app == "billing" };"#,
        );
        let with_ext = |path: &str, ext: &[(&str, &str)], extra: &[(&str, &str)]| {
            let mut headers = vec![("remote-user", "fin"), ("remote-groups", "finance")];
            headers.extend_from_slice(extra);
            let mut request = http("GET", path, &headers);
            let attrs = request.attributes.as_mut().unwrap();
            attrs.context_extensions = ext
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            request
        };
        let billing = with_ext(
            "/billing/invoices",
            &[("app", "billing"), ("env", "prod")],
            &[],
        );
        assert_eq!(verdict(&f.check(billing).await), ALLOW);
        let hr = with_ext("/hr/people", &[("app", "hr")], &[]);
        assert_eq!(verdict(&f.check(hr).await), DENY);
        let none = with_ext("/billing/invoices", &[], &[]);
        assert_eq!(verdict(&f.check(none).await), DENY);
        let header = with_ext("/billing/invoices", &[], &[("x-app", "billing")]);
        assert_eq!(verdict(&f.check(header).await), DENY);
    }
}
