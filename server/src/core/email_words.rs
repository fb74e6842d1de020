//! The words of the emails a visitor gets (unseen replies, the transcript), in the widget's
//! languages, chosen by the visitor's locale (the browser's, as the widget reported it);
//! English for any other. `{site}` and `{name}` are filled in; everything is escaped where it
//! goes into HTML.

/// One language's words.
pub struct Words {
    /// The language code (`lang` of the HTML part).
    pub lang: &'static str,
    /// Laid out right to left.
    pub rtl: bool,
    pub subject: &'static str,
    /// With the visitor's name, and without one.
    pub hello: &'static str,
    pub hello_anonymous: &'static str,
    pub unseen: &'static str,
    pub continue_: &'static str,
    pub reply_in_chat: &'static str,
    pub reply_here: &'static str,
    pub why: &'static str,
    pub unsubscribe: &'static str,
    /// The transcript email's subject.
    pub transcript_subject: &'static str,
}

const EN: Words = Words {
    lang: "en",
    rtl: false,
    subject: "New reply from {site}",
    hello: "Hello {name},",
    hello_anonymous: "Hello,",
    unseen: "you have replies from {site} that you have not read yet:",
    continue_: "Continue the conversation",
    reply_in_chat: "Reply in the chat on our website.",
    reply_here: "You can also simply reply to this email.",
    why: "You get this email because you left your address in the chat on {site}.",
    unsubscribe: "Unsubscribe",
    transcript_subject: "Your conversation with {site}",
};

const ALL: [Words; 11] = [
    EN,
    Words {
        lang: "de",
        rtl: false,
        subject: "Neue Antwort von {site}",
        hello: "Hallo {name},",
        hello_anonymous: "Hallo,",
        unseen: "Sie haben ungelesene Antworten von {site}:",
        continue_: "Unterhaltung fortsetzen",
        reply_in_chat: "Antworten Sie im Chat auf unserer Website.",
        reply_here: "Sie können auch einfach auf diese E-Mail antworten.",
        why: "Sie erhalten diese E-Mail, weil Sie im Chat von {site} Ihre Adresse angegeben haben.",
        unsubscribe: "Keine E-Mails mehr erhalten",
        transcript_subject: "Ihre Unterhaltung mit {site}",
    },
    Words {
        lang: "fr",
        rtl: false,
        subject: "Nouvelle réponse de {site}",
        hello: "Bonjour {name},",
        hello_anonymous: "Bonjour,",
        unseen: "vous avez des réponses de {site} que vous n'avez pas encore lues :",
        continue_: "Poursuivre la conversation",
        reply_in_chat: "Répondez dans le chat de notre site.",
        reply_here: "Vous pouvez aussi simplement répondre à cet e-mail.",
        why: "Vous recevez cet e-mail parce que vous avez laissé votre adresse dans le chat de {site}.",
        unsubscribe: "Se désabonner",
        transcript_subject: "Votre conversation avec {site}",
    },
    Words {
        lang: "es",
        rtl: false,
        subject: "Nueva respuesta de {site}",
        hello: "Hola, {name}:",
        hello_anonymous: "Hola:",
        unseen: "tiene respuestas de {site} que todavía no ha leído:",
        continue_: "Continuar la conversación",
        reply_in_chat: "Responda en el chat de nuestra web.",
        reply_here: "También puede responder a este correo.",
        why: "Recibe este correo porque dejó su dirección en el chat de {site}.",
        unsubscribe: "Darse de baja",
        transcript_subject: "Su conversación con {site}",
    },
    Words {
        lang: "it",
        rtl: false,
        subject: "Nuova risposta da {site}",
        hello: "Ciao {name},",
        hello_anonymous: "Ciao,",
        unseen: "hai risposte da {site} che non hai ancora letto:",
        continue_: "Continua la conversazione",
        reply_in_chat: "Rispondi nella chat del nostro sito.",
        reply_here: "Puoi anche rispondere direttamente a questa email.",
        why: "Ricevi questa email perché hai lasciato il tuo indirizzo nella chat di {site}.",
        unsubscribe: "Annulla l'iscrizione",
        transcript_subject: "La tua conversazione con {site}",
    },
    Words {
        lang: "pt",
        rtl: false,
        subject: "Nova resposta de {site}",
        hello: "Olá {name},",
        hello_anonymous: "Olá,",
        unseen: "tem respostas de {site} que ainda não leu:",
        continue_: "Continuar a conversa",
        reply_in_chat: "Responda no chat do nosso site.",
        reply_here: "Também pode simplesmente responder a este e-mail.",
        why: "Recebe este e-mail porque deixou o seu endereço no chat de {site}.",
        unsubscribe: "Cancelar a subscrição",
        transcript_subject: "A sua conversa com {site}",
    },
    Words {
        lang: "nl",
        rtl: false,
        subject: "Nieuw antwoord van {site}",
        hello: "Hallo {name},",
        hello_anonymous: "Hallo,",
        unseen: "u hebt antwoorden van {site} die u nog niet hebt gelezen:",
        continue_: "Het gesprek voortzetten",
        reply_in_chat: "Antwoord in de chat op onze website.",
        reply_here: "U kunt ook gewoon op deze e-mail antwoorden.",
        why: "U krijgt deze e-mail omdat u uw adres in de chat van {site} hebt achtergelaten.",
        unsubscribe: "Afmelden",
        transcript_subject: "Uw gesprek met {site}",
    },
    Words {
        lang: "pl",
        rtl: false,
        subject: "Nowa odpowiedź od {site}",
        hello: "Dzień dobry {name},",
        hello_anonymous: "Dzień dobry,",
        unseen: "masz nieprzeczytane odpowiedzi od {site}:",
        continue_: "Kontynuuj rozmowę",
        reply_in_chat: "Odpowiedz na czacie na naszej stronie.",
        reply_here: "Możesz też po prostu odpowiedzieć na tę wiadomość.",
        why: "Otrzymujesz tę wiadomość, ponieważ podałeś swój adres na czacie {site}.",
        unsubscribe: "Wypisz się",
        transcript_subject: "Twoja rozmowa z {site}",
    },
    Words {
        lang: "tr",
        rtl: false,
        subject: "{site} adresinden yeni yanıt",
        hello: "Merhaba {name},",
        hello_anonymous: "Merhaba,",
        unseen: "{site} adresinden henüz okumadığınız yanıtlar var:",
        continue_: "Sohbete devam edin",
        reply_in_chat: "Web sitemizdeki sohbetten yanıtlayın.",
        reply_here: "Bu e-postayı yanıtlamanız da yeterli.",
        why: "Bu e-postayı {site} sohbetinde adresinizi bıraktığınız için alıyorsunuz.",
        unsubscribe: "Abonelikten çık",
        transcript_subject: "{site} ile sohbetiniz",
    },
    Words {
        lang: "ja",
        rtl: false,
        subject: "{site}から新しい返信があります",
        hello: "{name} 様",
        hello_anonymous: "こんにちは。",
        unseen: "{site}からの未読の返信があります:",
        continue_: "会話を続ける",
        reply_in_chat: "当サイトのチャットで返信してください。",
        reply_here: "このメールに返信することもできます。",
        why: "{site}のチャットでメールアドレスを入力されたため、このメールをお送りしています。",
        unsubscribe: "配信停止",
        transcript_subject: "{site}との会話",
    },
    Words {
        lang: "ar",
        rtl: true,
        subject: "رد جديد من {site}",
        hello: "مرحبًا {name}،",
        hello_anonymous: "مرحبًا،",
        unseen: "لديك ردود من {site} لم تقرأها بعد:",
        continue_: "متابعة المحادثة",
        reply_in_chat: "رُدّ في الدردشة على موقعنا.",
        reply_here: "يمكنك أيضًا الرد على هذه الرسالة مباشرة.",
        why: "تصلك هذه الرسالة لأنك تركت عنوانك في دردشة {site}.",
        unsubscribe: "إلغاء الاشتراك",
        transcript_subject: "محادثتك مع {site}",
    },
];

/// The language of a locale: "fr-CA" and "fr_CA" are "fr".
pub fn language(locale: &str) -> String {
    locale
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// One of the widget's languages (the same list as `LOCALES` in `widget/src/strings.js`)?
pub fn is_widget_language(lang: &str) -> bool {
    ALL.iter().any(|w| w.lang == lang)
}

/// The words for a locale such as "fr-CA" (its language), English when we have none.
pub fn words(locale: &str) -> &'static Words {
    let lang = language(locale);
    ALL.iter().find(|w| w.lang == lang).unwrap_or(&ALL[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_visitors_language_or_english() {
        assert_eq!(words("fr-CA").lang, "fr");
        assert_eq!(words("JA").lang, "ja");
        assert_eq!(words("pt_BR").lang, "pt");
        assert!(words("ar-EG").rtl);
        assert_eq!(words("sw-KE").lang, "en");
        assert_eq!(words("").lang, "en");
    }

    #[test]
    fn every_language_has_every_placeholder_where_english_has_it() {
        for w in &ALL {
            for (ours, en) in [
                (w.subject, EN.subject),
                (w.hello, EN.hello),
                (w.unseen, EN.unseen),
                (w.why, EN.why),
                (w.transcript_subject, EN.transcript_subject),
            ] {
                for p in ["{site}", "{name}"] {
                    assert_eq!(ours.contains(p), en.contains(p), "{}: {ours:?}", w.lang);
                }
            }
            assert!(!w.hello_anonymous.contains('{'), "{}", w.lang);
        }
        // The widget's languages, no more and no fewer.
        let langs: Vec<&str> = ALL.iter().map(|w| w.lang).collect();
        assert_eq!(
            langs,
            [
                "en", "de", "fr", "es", "it", "pt", "nl", "pl", "tr", "ja", "ar"
            ]
        );
    }
}
