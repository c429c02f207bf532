//! Autocomplete shared by several command families: answered from memory, since
//! Discord waits at most 3 s for the choices. Families import this leaf rather than
//! each other.

use crate::serenity::{AutocompleteChoice, CreateAutocompleteResponse};
use crate::Context;

/// Autocomplete: configured service names, from memory (no I/O inside the 3 s).
pub async fn autocomplete_service(ctx: Context<'_>, partial: &str) -> CreateAutocompleteResponse {
    // Discord refuses more than 25 choices, and poise does not cut the list.
    let choices = ctx
        .data()
        .service_names_matching(partial, 25)
        .into_iter()
        .map(|name| AutocompleteChoice::new(name.clone(), name))
        .collect();
    CreateAutocompleteResponse::new().set_choices(choices)
}
