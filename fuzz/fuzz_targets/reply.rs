//! Any bytes as an emailed reply to a ballot: a choice or nothing, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let choices: Vec<String> = ["yes", "no", "abstain", "no_objection"]
        .map(String::from)
        .to_vec();
    let mut label = councild::definition::Texts::one("No objection");
    label.by_language.insert("ar".into(), "لا اعتراض".into());
    let labels = std::collections::BTreeMap::from([("no_objection".to_string(), label)]);
    let text = mail_text(data);
    if let Some(choice) = councild::inbound::read_choice(&text, &choices, &labels) {
        assert!(choices.contains(&choice));
    }
});

fn mail_text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}
