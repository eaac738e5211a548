//! Submitted HTML forms: `application/x-www-form-urlencoded` bodies read into name/value
//! pairs, with the field look-ups the pages need.

use super::{UiError, UiResult};
use crate::query::form_pairs;

/// The fields of one submitted form, in the order sent (a field may repeat).
#[derive(Debug, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// Undecodable pairs are dropped: a browser never sends them.
    pub fn parse(body: &[u8]) -> Form {
        Form(form_pairs(&String::from_utf8_lossy(body)).collect())
    }

    /// The first value of a field, as sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// A field's value without surrounding white space; empty when absent.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default().trim()
    }

    /// A field that must not be empty; `label` names it in the message.
    pub fn required(&self, name: &str, label: &str) -> UiResult<&str> {
        match self.text(name) {
            "" => Err(UiError::Invalid(format!("{label} is required."))),
            value => Ok(value),
        }
    }

    /// A field as sent, white space included (passwords), that must not be empty.
    pub fn secret(&self, name: &str, label: &str) -> UiResult<&str> {
        match self.get(name).unwrap_or_default() {
            "" => Err(UiError::Invalid(format!("{label} is required."))),
            value => Ok(value),
        }
    }

    /// Every value of a field that may repeat (checkboxes of one name), in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether a checkbox was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_decoded_as_browsers_encode_them() {
        let form = Form::parse(b"name=web+app&pw=a%26b%3D+c&flag&name=second&empty=");
        assert_eq!(form.get("name"), Some("web app"));
        assert_eq!(form.all("name").collect::<Vec<_>>(), ["web app", "second"]);
        assert_eq!(form.get("pw"), Some("a&b= c"));
        assert!(form.checked("flag"));
        assert!(!form.checked("missing"));
        assert_eq!(form.text("empty"), "");
        assert!(form.required("empty", "Name").is_err());
        assert_eq!(form.required("name", "Name").unwrap(), "web app");
    }

    #[test]
    fn secrets_keep_their_spaces() {
        let form = Form::parse(b"password=+spaced+");
        assert_eq!(form.secret("password", "Password").unwrap(), " spaced ");
        assert_eq!(form.text("password"), "spaced");
    }
}
