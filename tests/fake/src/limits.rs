//! Discord's documented size and shape limits, checked on everything the bot sends.
//!
//! Lengths are counted in characters (Unicode scalar values), as Discord does, not bytes.

use serde_json::Value;

use crate::error::FormErrors;

pub(crate) const MAX_CONTENT: usize = 2_000;
pub(crate) const MAX_EMBEDS: usize = 10;
pub(crate) const MAX_EMBED_TITLE: usize = 256;
pub(crate) const MAX_EMBED_DESCRIPTION: usize = 4_096;
pub(crate) const MAX_EMBED_FIELDS: usize = 25;
pub(crate) const MAX_FIELD_NAME: usize = 256;
pub(crate) const MAX_FIELD_VALUE: usize = 1_024;
pub(crate) const MAX_FOOTER_TEXT: usize = 2_048;
pub(crate) const MAX_AUTHOR_NAME: usize = 256;
pub(crate) const MAX_EMBED_TOTAL: usize = 6_000;
pub(crate) const MAX_ATTACHMENTS: usize = 10;
pub(crate) const MAX_FILE_SIZE: usize = 10 * 1024 * 1024;
pub(crate) const MAX_REQUEST_SIZE: usize = 25 * 1024 * 1024;
pub(crate) const MAX_ACTION_ROWS: usize = 5;
pub(crate) const MAX_ROW_BUTTONS: usize = 5;
pub(crate) const MAX_CUSTOM_ID: usize = 100;
pub(crate) const MAX_BUTTON_LABEL: usize = 80;
pub(crate) const MAX_SELECT_OPTIONS: usize = 25;
pub(crate) const MAX_NONCE: usize = 25;

pub(crate) const MAX_COMMANDS: usize = 100;
pub(crate) const MAX_CONTEXT_MENU_COMMANDS: usize = 5;
pub(crate) const MAX_COMMAND_NAME: usize = 32;
pub(crate) const MAX_COMMAND_DESCRIPTION: usize = 100;
pub(crate) const MAX_OPTIONS: usize = 25;
pub(crate) const MAX_CHOICES: usize = 25;
pub(crate) const MAX_CHOICE_NAME: usize = 100;
pub(crate) const MAX_CHOICE_VALUE: usize = 100;
pub(crate) const MAX_COMMAND_TOTAL: usize = 8_000;

pub(crate) const MAX_MODAL_TITLE: usize = 45;
pub(crate) const MAX_MODAL_ROWS: usize = 5;
pub(crate) const MAX_TEXT_INPUT_LABEL: usize = 45;
pub(crate) const MAX_TEXT_INPUT_VALUE: usize = 4_000;
pub(crate) const MAX_TEXT_INPUT_PLACEHOLDER: usize = 100;

/// Message flags a bot may set: SUPPRESS_EMBEDS, EPHEMERAL (interactions only),
/// SUPPRESS_NOTIFICATIONS.
pub(crate) const FLAG_SUPPRESS_EMBEDS: u64 = 1 << 2;
pub(crate) const FLAG_EPHEMERAL: u64 = 1 << 6;
pub(crate) const FLAG_LOADING: u64 = 1 << 7;
pub(crate) const FLAG_SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;

fn len(s: &str) -> usize {
    s.chars().count()
}

fn max_len(errors: &mut FormErrors, path: &str, value: &str, max: usize) {
    if len(value) > max {
        errors.add(
            path,
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {max} or fewer in length."),
        );
    }
}

fn bad_len(errors: &mut FormErrors, path: &str, value: &str, min: usize, max: usize) {
    let n = len(value);
    if n < min || n > max {
        errors.add(
            path,
            "BASE_TYPE_BAD_LENGTH",
            format!("Must be between {min} and {max} in length."),
        );
    }
}

/// A string field that may be absent or null; anything else is a type error.
fn opt_str<'a>(errors: &mut FormErrors, path: &str, value: Option<&'a Value>) -> Option<&'a str> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.add(path, "BASE_TYPE_STRING", "Must be a string.");
            None
        }
    }
}

/// An array field that may be absent or null; anything else is a type error.
fn opt_array<'a>(
    errors: &mut FormErrors,
    path: &str,
    value: Option<&'a Value>,
) -> Option<&'a Vec<Value>> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => {
            errors.add(path, "BASE_TYPE_ARRAY", "Must be an array.");
            None
        }
    }
}

/// Checks a message body (create or edit) against Discord's limits. `new_files` is
/// the number of files uploaded with the request.
pub(crate) fn check_message(payload: &Value, new_files: usize, errors: &mut FormErrors) {
    let Some(obj) = payload.as_object() else {
        errors.add(
            "",
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        );
        return;
    };
    if let Some(content) = opt_str(errors, "content", obj.get("content")) {
        max_len(errors, "content", content, MAX_CONTENT);
    }
    if let Some(embeds) = opt_array(errors, "embeds", obj.get("embeds")) {
        check_embeds(embeds, errors);
    }
    if let Some(rows) = opt_array(errors, "components", obj.get("components")) {
        check_components(rows, errors);
    }
    let listed = opt_array(errors, "attachments", obj.get("attachments")).map_or(0, Vec::len);
    if listed.max(new_files) > MAX_ATTACHMENTS {
        errors.add(
            "attachments",
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {MAX_ATTACHMENTS} or fewer in length."),
        );
    }
    if let Some(mentions) = obj.get("allowed_mentions").filter(|v| !v.is_null()) {
        check_allowed_mentions(mentions, errors);
    }
    match obj.get("nonce") {
        None | Some(Value::Null) | Some(Value::Number(_)) => {}
        Some(Value::String(s)) => max_len(errors, "nonce", s, MAX_NONCE),
        Some(_) => errors.add("nonce", "BASE_TYPE_STRING", "Must be a string."),
    }
    if let Some(flags) = obj.get("flags").filter(|v| !v.is_null()) {
        if flags.as_u64().is_none() {
            errors.add("flags", "NUMBER_TYPE_COERCE", "Value is not int.");
        }
    }
}

fn check_embeds(embeds: &[Value], errors: &mut FormErrors) {
    if embeds.len() > MAX_EMBEDS {
        errors.add(
            "embeds",
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {MAX_EMBEDS} or fewer in length."),
        );
    }
    let mut total = 0;
    for (i, embed) in embeds.iter().enumerate() {
        let path = format!("embeds.{i}");
        let Some(embed) = embed.as_object() else {
            errors.add(
                path,
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            );
            continue;
        };
        let mut text = |errors: &mut FormErrors, field: &str, value: Option<&Value>, max: usize| {
            let field_path = format!("{path}.{field}");
            if let Some(s) = opt_str(errors, &field_path, value) {
                max_len(errors, &field_path, s, max);
                total += len(s);
            }
        };
        text(errors, "title", embed.get("title"), MAX_EMBED_TITLE);
        text(
            errors,
            "description",
            embed.get("description"),
            MAX_EMBED_DESCRIPTION,
        );
        if let Some(footer) = embed.get("footer").and_then(Value::as_object) {
            text(errors, "footer.text", footer.get("text"), MAX_FOOTER_TEXT);
        }
        if let Some(author) = embed.get("author").and_then(Value::as_object) {
            text(errors, "author.name", author.get("name"), MAX_AUTHOR_NAME);
        }
        let fields_path = format!("{path}.fields");
        if let Some(fields) = opt_array(errors, &fields_path, embed.get("fields")) {
            if fields.len() > MAX_EMBED_FIELDS {
                errors.add(
                    &fields_path,
                    "BASE_TYPE_MAX_LENGTH",
                    format!("Must be {MAX_EMBED_FIELDS} or fewer in length."),
                );
            }
            for (j, field) in fields.iter().enumerate() {
                for (key, max) in [("name", MAX_FIELD_NAME), ("value", MAX_FIELD_VALUE)] {
                    let field_path = format!("{fields_path}.{j}.{key}");
                    match opt_str(errors, &field_path, field.get(key)) {
                        // An empty field name or value is rejected, a common bot bug.
                        None | Some("") => {
                            errors.add(field_path, "BASE_TYPE_REQUIRED", "This field is required")
                        }
                        Some(s) => {
                            max_len(errors, &field_path, s, max);
                            total += len(s);
                        }
                    }
                }
            }
        }
    }
    if total > MAX_EMBED_TOTAL {
        errors.add(
            "embeds",
            "MAX_EMBED_SIZE_EXCEEDED",
            format!("Embed size exceeds maximum size of {MAX_EMBED_TOTAL}"),
        );
    }
}

fn check_components(rows: &[Value], errors: &mut FormErrors) {
    if rows.len() > MAX_ACTION_ROWS {
        errors.add(
            "components",
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {MAX_ACTION_ROWS} or fewer in length."),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let path = format!("components.{i}");
        if row.get("type").and_then(Value::as_u64) != Some(1) {
            errors.add(
                &path,
                "UNION_TYPE_CHOICES",
                "Value of field \"type\" must be one of (1,).",
            );
            continue;
        }
        let children = row.get("components").and_then(Value::as_array);
        let children = children.map(Vec::as_slice).unwrap_or_default();
        if children.is_empty() {
            errors.add(
                format!("{path}.components"),
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 5 in length.",
            );
        }
        let selects = children
            .iter()
            .filter(|c| matches!(c.get("type").and_then(Value::as_u64), Some(3 | 5..=8)))
            .count();
        if children.len() > MAX_ROW_BUTTONS || (selects > 0 && children.len() > 1) {
            errors.add(
                format!("{path}.components"),
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "The specified component exceeds the maximum width",
            );
        }
        for (j, child) in children.iter().enumerate() {
            let child_path = format!("{path}.components.{j}");
            let kind = child.get("type").and_then(Value::as_u64).unwrap_or(0);
            let style = child.get("style").and_then(Value::as_u64);
            // Link (5) and premium (6) buttons carry a url or sku_id, never a custom_id.
            let link = kind == 2 && matches!(style, Some(5 | 6));
            let target = if style == Some(6) { "sku_id" } else { "url" };
            match child.get("custom_id") {
                Some(Value::String(id)) if !link => {
                    bad_len(
                        errors,
                        &format!("{child_path}.custom_id"),
                        id,
                        1,
                        MAX_CUSTOM_ID,
                    );
                    if !seen.insert(id.clone()) {
                        errors.add(
                            format!("{child_path}.custom_id"),
                            "COMPONENT_CUSTOM_ID_DUPLICATED",
                            "Component custom id cannot be duplicated",
                        );
                    }
                }
                None | Some(Value::Null) if link => {
                    if child.get(target).is_none_or(Value::is_null) {
                        errors.add(
                            format!("{child_path}.{target}"),
                            "BASE_TYPE_REQUIRED",
                            "This field is required",
                        );
                    }
                }
                _ if link => errors.add(
                    format!("{child_path}.custom_id"),
                    "BUTTON_COMPONENT_CUSTOM_ID_AND_URL",
                    "A link button cannot have a custom id",
                ),
                _ => errors.add(
                    format!("{child_path}.custom_id"),
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                ),
            }
            match kind {
                2 => {
                    if let Some(label) = child.get("label").and_then(Value::as_str) {
                        max_len(
                            errors,
                            &format!("{child_path}.label"),
                            label,
                            MAX_BUTTON_LABEL,
                        );
                    }
                }
                3 => {
                    let n = child
                        .get("options")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    if n == 0 || n > MAX_SELECT_OPTIONS {
                        errors.add(
                            format!("{child_path}.options"),
                            "BASE_TYPE_BAD_LENGTH",
                            format!("Must be between 1 and {MAX_SELECT_OPTIONS} in length."),
                        );
                    }
                }
                5..=8 => {}
                _ => errors.add(
                    format!("{child_path}.type"),
                    "UNION_TYPE_CHOICES",
                    "Value of field \"type\" must be one of (2, 3, 5, 6, 7, 8).",
                ),
            }
        }
    }
}

fn check_allowed_mentions(mentions: &Value, errors: &mut FormErrors) {
    let parse: Vec<&str> = mentions
        .get("parse")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for kind in ["users", "roles"] {
        let listed = mentions
            .get(kind)
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty());
        if listed && parse.contains(&kind) {
            errors.add(
                "allowed_mentions",
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                format!("parse:[\"{kind}\"] and {kind}: [ids...] are mutually exclusive."),
            );
        }
    }
}

/// Checks `type 8` autocomplete result data.
pub(crate) fn check_autocomplete(data: &Value, errors: &mut FormErrors) {
    let Some(choices) = data.get("choices").and_then(Value::as_array) else {
        errors.add(
            "data.choices",
            "BASE_TYPE_REQUIRED",
            "This field is required",
        );
        return;
    };
    if choices.len() > MAX_CHOICES {
        errors.add(
            "data.choices",
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {MAX_CHOICES} or fewer in length."),
        );
    }
    for (i, choice) in choices.iter().enumerate() {
        check_choice(choice, &format!("data.choices.{i}"), errors);
    }
}

fn check_choice(choice: &Value, path: &str, errors: &mut FormErrors) {
    match choice.get("name").and_then(Value::as_str) {
        Some(name) => bad_len(errors, &format!("{path}.name"), name, 1, MAX_CHOICE_NAME),
        None => errors.add(
            format!("{path}.name"),
            "BASE_TYPE_REQUIRED",
            "This field is required",
        ),
    }
    match choice.get("value") {
        Some(Value::String(v)) => max_len(errors, &format!("{path}.value"), v, MAX_CHOICE_VALUE),
        Some(Value::Number(_)) => {}
        _ => errors.add(
            format!("{path}.value"),
            "BASE_TYPE_REQUIRED",
            "This field is required",
        ),
    }
}

/// Checks `type 9` modal data.
pub(crate) fn check_modal(data: &Value, errors: &mut FormErrors) {
    match data.get("custom_id").and_then(Value::as_str) {
        Some(id) => bad_len(errors, "data.custom_id", id, 1, MAX_CUSTOM_ID),
        None => errors.add(
            "data.custom_id",
            "BASE_TYPE_REQUIRED",
            "This field is required",
        ),
    }
    match data.get("title").and_then(Value::as_str) {
        Some(title) => bad_len(errors, "data.title", title, 1, MAX_MODAL_TITLE),
        None => errors.add("data.title", "BASE_TYPE_REQUIRED", "This field is required"),
    }
    let rows = data.get("components").and_then(Value::as_array);
    let rows = rows.map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() || rows.len() > MAX_MODAL_ROWS {
        errors.add(
            "data.components",
            "BASE_TYPE_BAD_LENGTH",
            format!("Must be between 1 and {MAX_MODAL_ROWS} in length."),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let path = format!("data.components.{i}.components");
        let inputs = row.get("components").and_then(Value::as_array);
        let inputs = inputs.map(Vec::as_slice).unwrap_or_default();
        if row.get("type").and_then(Value::as_u64) != Some(1) || inputs.len() != 1 {
            errors.add(
                &path,
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 1 in length.",
            );
            continue;
        }
        let input = &inputs[0];
        let path = format!("{path}.0");
        if input.get("type").and_then(Value::as_u64) != Some(4) {
            errors.add(
                format!("{path}.type"),
                "UNION_TYPE_CHOICES",
                "Value of field \"type\" must be one of (4,).",
            );
        }
        match input.get("custom_id").and_then(Value::as_str) {
            Some(id) => {
                bad_len(errors, &format!("{path}.custom_id"), id, 1, MAX_CUSTOM_ID);
                if !seen.insert(id.to_string()) {
                    errors.add(
                        format!("{path}.custom_id"),
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    );
                }
            }
            None => errors.add(
                format!("{path}.custom_id"),
                "BASE_TYPE_REQUIRED",
                "This field is required",
            ),
        }
        match input.get("label").and_then(Value::as_str) {
            Some(label) => bad_len(
                errors,
                &format!("{path}.label"),
                label,
                1,
                MAX_TEXT_INPUT_LABEL,
            ),
            None => errors.add(
                format!("{path}.label"),
                "BASE_TYPE_REQUIRED",
                "This field is required",
            ),
        }
        if let Some(value) = input.get("value").and_then(Value::as_str) {
            max_len(
                errors,
                &format!("{path}.value"),
                value,
                MAX_TEXT_INPUT_VALUE,
            );
        }
        if let Some(placeholder) = input.get("placeholder").and_then(Value::as_str) {
            max_len(
                errors,
                &format!("{path}.placeholder"),
                placeholder,
                MAX_TEXT_INPUT_PLACEHOLDER,
            );
        }
        for key in ["min_length", "max_length"] {
            if let Some(n) = input.get(key).and_then(Value::as_u64) {
                if n > MAX_TEXT_INPUT_VALUE as u64 {
                    errors.add(
                        format!("{path}.{key}"),
                        "NUMBER_TYPE_MAX",
                        format!(
                            "int value should be less than or equal to {MAX_TEXT_INPUT_VALUE}."
                        ),
                    );
                }
            }
        }
    }
}

/// Checks a bulk overwrite of application commands.
pub(crate) fn check_commands(commands: &[Value], errors: &mut FormErrors) {
    let mut counts = [0usize; 4];
    let mut names = std::collections::HashSet::new();
    for (i, command) in commands.iter().enumerate() {
        let path = i.to_string();
        if !command.is_object() {
            errors.add(
                path,
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            );
            continue;
        }
        let kind = command.get("type").and_then(Value::as_u64).unwrap_or(1);
        if !(1..=3).contains(&kind) {
            errors.add(
                format!("{path}.type"),
                "BASE_TYPE_CHOICES",
                "Value must be one of {1, 2, 3}.",
            );
            continue;
        }
        counts[kind as usize] += 1;
        let name = command
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind == 1 {
            check_option_name(name, &format!("{path}.name"), errors);
        } else {
            bad_len(errors, &format!("{path}.name"), name, 1, MAX_COMMAND_NAME);
        }
        if !names.insert((kind, name.to_string())) {
            errors.add(
                format!("{path}.name"),
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                format!("Application command names must be unique: {name}"),
            );
        }
        let description = command
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind == 1 {
            bad_len(
                errors,
                &format!("{path}.description"),
                description,
                1,
                MAX_COMMAND_DESCRIPTION,
            );
        }
        let mut total = len(name) + len(description);
        if let Some(options) = command.get("options").and_then(Value::as_array) {
            if kind != 1 && !options.is_empty() {
                errors.add(
                    format!("{path}.options"),
                    "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                    "Context menu commands cannot have options",
                );
            }
            total += check_options(options, &format!("{path}.options"), 0, errors);
        }
        if total > MAX_COMMAND_TOTAL {
            errors.add(
                &path,
                "APPLICATION_COMMAND_TOO_LARGE",
                format!("Command exceeds maximum size ({MAX_COMMAND_TOTAL})"),
            );
        }
    }
    if counts[1] > MAX_COMMANDS {
        errors.add(
            "",
            "APPLICATION_COMMANDS_MAX_EXCEEDED",
            format!("Maximum number of application commands reached ({MAX_COMMANDS})"),
        );
    }
    if counts[2] > MAX_CONTEXT_MENU_COMMANDS || counts[3] > MAX_CONTEXT_MENU_COMMANDS {
        errors.add(
            "",
            "APPLICATION_COMMANDS_MAX_EXCEEDED",
            format!(
                "Maximum number of context menu commands reached ({MAX_CONTEXT_MENU_COMMANDS})"
            ),
        );
    }
}

/// Command and option names: 1-32 characters, letters/digits/`-`/`_`/`'`, no upper case.
fn check_option_name(name: &str, path: &str, errors: &mut FormErrors) {
    bad_len(errors, path, name, 1, MAX_COMMAND_NAME);
    let valid = name
        .chars()
        .all(|c| (c.is_alphanumeric() || matches!(c, '-' | '_' | '\'')) && !c.is_uppercase());
    if !valid {
        errors.add(
            path,
            "APPLICATION_COMMAND_INVALID_NAME",
            format!("Command name is invalid: {name}"),
        );
    }
}

/// Checks options recursively; returns the characters they add to the command size.
fn check_options(options: &[Value], path: &str, depth: usize, errors: &mut FormErrors) -> usize {
    if options.len() > MAX_OPTIONS {
        errors.add(
            path,
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {MAX_OPTIONS} or fewer in length."),
        );
    }
    let mut total = 0;
    let mut names = std::collections::HashSet::new();
    let mut optional_seen = false;
    for (i, option) in options.iter().enumerate() {
        let path = format!("{path}.{i}");
        let kind = option.get("type").and_then(Value::as_u64).unwrap_or(0);
        if !(1..=11).contains(&kind) {
            errors.add(
                format!("{path}.type"),
                "BASE_TYPE_CHOICES",
                "Value must be one of {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}.",
            );
        }
        // Subcommand groups only at the top level, subcommands at most one level down.
        if (kind == 2 && depth > 0) || (kind == 1 && depth > 1) {
            errors.add(
                format!("{path}.type"),
                "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                "Sub-command and sub-command group option types are mutually exclusive to all other types",
            );
        }
        let name = option
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        check_option_name(name, &format!("{path}.name"), errors);
        if !names.insert(name.to_string()) {
            errors.add(
                format!("{path}.name"),
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            );
        }
        let description = option
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        bad_len(
            errors,
            &format!("{path}.description"),
            description,
            1,
            MAX_COMMAND_DESCRIPTION,
        );
        total += len(name) + len(description);
        let required = option
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if kind > 2 {
            if required && optional_seen {
                errors.add(
                    format!("{path}.required"),
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                );
            }
            optional_seen |= !required;
        }
        if let Some(choices) = option.get("choices").and_then(Value::as_array) {
            if choices.len() > MAX_CHOICES {
                errors.add(
                    format!("{path}.choices"),
                    "BASE_TYPE_MAX_LENGTH",
                    format!("Must be {MAX_CHOICES} or fewer in length."),
                );
            }
            let autocomplete = option.get("autocomplete").and_then(Value::as_bool) == Some(true);
            if autocomplete && !choices.is_empty() {
                errors.add(
                    format!("{path}.autocomplete"),
                    "APPLICATION_COMMAND_OPTION_CHOICES_AUTOCOMPLETE",
                    "Autocomplete cannot be set with choices",
                );
            }
            for (j, choice) in choices.iter().enumerate() {
                check_choice(choice, &format!("{path}.choices.{j}"), errors);
                total += choice.get("name").and_then(Value::as_str).map_or(0, len);
                total += match choice.get("value") {
                    Some(Value::String(s)) => len(s),
                    Some(other) => len(&other.to_string()),
                    None => 0,
                };
            }
        }
        if let Some(sub) = option.get("options").and_then(Value::as_array) {
            total += check_options(sub, &format!("{path}.options"), depth + 1, errors);
        }
    }
    total
}

/// What a message mentions and whom it would actually ping under its
/// `allowed_mentions` (absent = Discord's default: everything in the content pings).
#[derive(Clone, Debug, Default)]
pub(crate) struct Mentions {
    pub users: Vec<u64>,
    pub roles: Vec<u64>,
    pub everyone: bool,
}

impl Mentions {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.roles.is_empty() && !self.everyone
    }
}

/// Everything `content` mentions: `<@id>`, `<@!id>`, `<@&id>`, `@everyone`, `@here`.
pub(crate) fn parse_mentions(content: &str) -> Mentions {
    let mut m = Mentions {
        everyone: content.contains("@everyone") || content.contains("@here"),
        ..Mentions::default()
    };
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let (is_role, body) = match rest.strip_prefix('&') {
            Some(body) => (true, body),
            None => (false, rest.strip_prefix('!').unwrap_or(rest)),
        };
        let Some(end) = body.find('>') else { break };
        if let Ok(id) = body[..end].parse::<u64>() {
            let list = if is_role { &mut m.roles } else { &mut m.users };
            if !list.contains(&id) {
                list.push(id);
            }
        }
    }
    m
}

/// The subset of `mentioned` that actually pings under `allowed`.
pub(crate) fn pinged(mentioned: &Mentions, allowed: Option<&Value>) -> Mentions {
    let Some(allowed) = allowed else {
        return mentioned.clone();
    };
    let parse: Vec<&str> = allowed
        .get("parse")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let listed = |key: &str| -> Vec<u64> {
        allowed
            .get(key)
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(id_of).collect())
            .unwrap_or_default()
    };
    let (users, roles) = (listed("users"), listed("roles"));
    Mentions {
        users: mentioned
            .users
            .iter()
            .copied()
            .filter(|u| parse.contains(&"users") || users.contains(u))
            .collect(),
        roles: mentioned
            .roles
            .iter()
            .copied()
            .filter(|r| parse.contains(&"roles") || roles.contains(r))
            .collect(),
        everyone: mentioned.everyone && parse.contains(&"everyone"),
    }
}

/// A snowflake sent either as a string or a number.
pub(crate) fn id_of(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors_of(payload: Value) -> Vec<String> {
        let mut errors = FormErrors::default();
        check_message(&payload, 0, &mut errors);
        match errors.into_result("t") {
            Ok(()) => vec![],
            Err(e) => vec![e.violation.map(|v| v.1).unwrap_or_default()],
        }
    }

    #[test]
    fn content_counts_chars_not_bytes() {
        assert!(errors_of(json!({ "content": "é".repeat(2000) })).is_empty());
        assert!(!errors_of(json!({ "content": "é".repeat(2001) })).is_empty());
    }

    #[test]
    fn embed_total_is_summed_across_embeds() {
        let embed = json!({ "description": "x".repeat(3001) });
        assert!(errors_of(json!({ "embeds": [embed.clone()] })).is_empty());
        let e = errors_of(json!({ "embeds": [embed.clone(), embed] }));
        assert!(e[0].contains("MAX_EMBED_SIZE_EXCEEDED"), "{e:?}");
    }

    #[test]
    fn empty_field_value_is_rejected() {
        let e = errors_of(json!({ "embeds": [{ "fields": [{ "name": "a", "value": "" }] }] }));
        assert!(e[0].contains("embeds.0.fields.0.value"), "{e:?}");
    }

    #[test]
    fn components_are_checked() {
        let button = |id: &str| json!({ "type": 2, "style": 1, "custom_id": id, "label": "x" });
        let row = json!({ "type": 1, "components": [button("a"), button("b")] });
        assert!(errors_of(json!({ "components": [row] })).is_empty());
        let six: Vec<Value> = (0..6).map(|i| button(&i.to_string())).collect();
        assert!(!errors_of(json!({ "components": [{ "type": 1, "components": six }] })).is_empty());
        let dup = json!({ "type": 1, "components": [button("a"), button("a")] });
        assert!(!errors_of(json!({ "components": [dup] })).is_empty());
        let long = json!({ "type": 1, "components": [button(&"x".repeat(101))] });
        assert!(!errors_of(json!({ "components": [long] })).is_empty());
    }

    #[test]
    fn mentions_and_pings() {
        let m = parse_mentions("hi <@1> <@!2> <@&3> @here");
        assert_eq!(m.users, vec![1, 2]);
        assert_eq!(m.roles, vec![3]);
        assert!(m.everyone);
        assert!(pinged(&m, Some(&json!({ "parse": [] }))).is_empty());
        let p = pinged(&m, Some(&json!({ "parse": [], "roles": ["3"] })));
        assert_eq!(p.roles, vec![3]);
        assert!(p.users.is_empty());
    }

    #[test]
    fn commands_are_checked() {
        let ok = json!([{ "name": "ack", "description": "Acknowledge", "options": [
            { "type": 3, "name": "id", "description": "Alert", "required": true },
            { "type": 3, "name": "note", "description": "Note" }
        ]}]);
        let mut errors = FormErrors::default();
        check_commands(ok.as_array().unwrap(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        for bad in [
            json!([{ "name": "Ack", "description": "x" }]),
            json!([{ "name": "ack", "description": "" }]),
            json!([{ "name": "a".repeat(33), "description": "x" }]),
            json!([{ "name": "ack", "description": "x", "options": [
                { "type": 3, "name": "a", "description": "a" },
                { "type": 3, "name": "b", "description": "b", "required": true }
            ]}]),
        ] {
            let mut errors = FormErrors::default();
            check_commands(bad.as_array().unwrap(), &mut errors);
            assert!(!errors.is_empty(), "{bad}");
        }
    }
}
