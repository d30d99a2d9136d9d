#![no_main]
//! Any bytes as a GraphQL request to the connector: as the JSON body of a POST (public and
//! internal schema) and as the query string of a GET, then parsed, validated, bounded and
//! executed by what the handler runs (`graphql::run`). The schemas have the served types and
//! limits but no service behind them, so resolvers answer with an error instead of calling
//! Kubernetes; everything before them runs. Nothing here may panic.

use std::sync::LazyLock;

use async_graphql::{EmptySubscription, Schema};
use certpair::connector::graphql::{
    CompassSchema, InternalMutation, InternalQuery, InternalSchema, Mutation, Query, bounded, run,
};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;

static PUBLIC: LazyLock<CompassSchema> =
    LazyLock::new(|| bounded(Schema::build(Query, Mutation, EmptySubscription), false));
static INTERNAL: LazyLock<InternalSchema> = LazyLock::new(|| {
    bounded(
        Schema::build(InternalQuery, InternalMutation, EmptySubscription),
        false,
    )
});

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<async_graphql::Request>(data) {
        let again = serde_json::from_slice::<async_graphql::Request>(data).unwrap();
        block_on(run(&PUBLIC, request));
        block_on(run(&INTERNAL, again));
    }
    if let Ok(query) = std::str::from_utf8(data)
        && let Ok(request) = async_graphql::http::parse_query_string(query)
    {
        block_on(run(&PUBLIC, request));
    }
});
