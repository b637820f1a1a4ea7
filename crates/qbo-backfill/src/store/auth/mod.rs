//! Who may do what, and what they hold: OAuth tokens of each company ([`tokens`]), the
//! companies themselves ([`companies`]), the encrypted secret store ([`secrets`]), API tokens
//! ([`api_tokens`]) and the web UI's operators, sessions and logins ([`web`]).

pub mod api_tokens;
pub mod companies;
pub mod secrets;
pub mod tokens;
pub mod web;
