//! String literals survive the builder's escaping: a property test through the simulator's own
//! parser, and nasty literals end to end over HTTP (sent text == received text).

use proptest::prelude::*;
use qbo::{Entity, Operator, Query};
use qbo_sim::query::{Value, parse_query};

use crate::common::{sim_client, small_config, start_sim};

fn query_for(literal: &str) -> String {
    Query::select(Entity::Customer)
        .filter("DisplayName", Operator::Eq, literal)
        .to_string()
}

fn parsed_literal(text: &str) -> Value {
    let q = parse_query(text).unwrap_or_else(|e| panic!("simulator refused {text:?}: {e}"));
    q.conditions
        .into_iter()
        .next()
        .map(|c| c.value)
        .expect("one condition")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_string_literal_survives_escaping_and_the_simulator_parser(s in any::<String>()) {
        prop_assert_eq!(parsed_literal(&query_for(&s)), Value::Str(s));
    }

    #[test]
    fn quote_and_backslash_heavy_literals_survive(s in "[\\\\'\" a&+%#=?;\n\t]{0,24}") {
        prop_assert_eq!(parsed_literal(&query_for(&s)), Value::Str(s));
    }
}

#[tokio::test]
async fn nasty_literals_arrive_unchanged_over_http() {
    let sim = start_sim(small_config()).await;
    let (client, _store) = sim_client(&sim);
    let nasty = [
        "Amy's Bird Sanctuary",
        r"back\slash",
        r"\'",
        "A & B + C = D; 100% ?x=1#frag",
        "tab\tnew\nline",
        "unicode é 漢字 🦀",
        "",
        " ",
    ];
    for literal in nasty {
        sim.state().reset_stats();
        let sent = query_for(literal);
        let page = client
            .query(&sent)
            .await
            .unwrap_or_else(|e| panic!("{literal:?}: {e}"));
        assert!(
            page.rows.is_empty() || literal.is_empty() || literal == " ",
            "{literal:?}"
        );
        assert_eq!(sim.state().queries(), vec![sent.clone()], "{literal:?}");
    }
    // A literal that matches: the generated data's first customer, found by its DisplayName.
    let first = sim
        .state()
        .entity_json("Customer", "1")
        .expect("customer 1");
    let name = first["DisplayName"].as_str().expect("name").to_owned();
    let page = client.query(&query_for(&name)).await.expect("query");
    assert!(page.rows.iter().any(|r| r.id == "1"), "{name:?} not found");
}
