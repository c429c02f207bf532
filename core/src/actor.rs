//! Who acted: the one type for the member behind a command, click or modal.
