// The widget's strings, per language, and the choice of language. Every string is set as
// text (textContent), never parsed as HTML.

export const STRINGS = {
  en: {
    openChat: 'Open chat', closeChat: 'Close chat', chat: 'Chat',
    online: 'We are online', onlineHint: 'We usually reply in a few minutes',
    offline: 'We are away', offlineHint: 'Leave a message, we will reply here',
    chattingWith: 'Chatting with {name}', topicQuestion: 'What is your question about?',
    agentsOnline: 'online', nobodyOnline: 'offline',
    name: 'Your name (optional)', email: 'Your email (optional)',
    placeholder: 'Write a message…', send: 'Send', back: 'Back',
    sending: 'Sending…', waiting: 'Waiting for network…', sent: 'Sent', read: 'Read',
    failed: 'Not delivered.', retry: 'Retry', remove: 'Remove',
    today: 'Today', yesterday: 'Yesterday',
    typing: '{name} is typing…', someone: 'Support',
    queued: 'You are number {n} in the queue. An agent will be with you shortly.',
    queuedOffline: 'No agent is online right now. Leave your message: we will answer here as soon as we are back.',
    leaveEmail: 'Get the reply by email too:', save: 'Save', saved: 'Thanks, we will write to {email}.',
    reconnecting: 'Connection lost. Reconnecting…', connecting: 'Connecting…',
    unavailable: 'The chat is not available right now.',
    assigned: '{name} joined the conversation', transferred: 'Transferred to {name}',
    resolved: 'The conversation was marked as resolved', reopened: 'The conversation was reopened',
    rated: 'You rated this conversation {score}/5',
    rateQuestion: 'How would you rate this conversation?', rateComment: 'Anything to add? (optional)',
    rateSend: 'Send rating', rateThanks: 'Thank you for your feedback!', star: '{n} of 5',
    transcript: 'Download the conversation', transcriptMail: 'Email it to me',
    newConversation: 'Start a new conversation', newMessage: 'New message',
    you: 'You', messages: 'Messages',
    attach: 'Attach files', removeFile: 'Remove', cancelUpload: 'Cancel upload', retryUpload: 'Retry upload',
    fileTooLarge: '{name} is too large: files up to {max} can be sent', tooManyFiles: 'At most {n} files per message',
    onlyImages: 'Only images can be sent here', uploadNetwork: 'Network lost: retry', uploadFailedSend: 'Some files did not upload: retry or remove them.',
    fileDeleted: 'deleted', openImage: 'Open image {name}', closeViewer: 'Close', download: 'Download', dropFiles: 'Drop files to send them'
  },
  de: {
    openChat: 'Chat öffnen', closeChat: 'Chat schließen', chat: 'Chat',
    online: 'Wir sind online', onlineHint: 'Wir antworten meist in wenigen Minuten',
    offline: 'Wir sind nicht da', offlineHint: 'Hinterlassen Sie eine Nachricht, wir antworten hier',
    chattingWith: 'Im Chat mit {name}', topicQuestion: 'Worum geht es bei Ihrer Frage?',
    agentsOnline: 'online', nobodyOnline: 'offline',
    name: 'Ihr Name (optional)', email: 'Ihre E-Mail (optional)',
    placeholder: 'Nachricht schreiben…', send: 'Senden', back: 'Zurück',
    sending: 'Wird gesendet…', waiting: 'Warte auf Netzwerk…', sent: 'Gesendet', read: 'Gelesen',
    failed: 'Nicht zugestellt.', retry: 'Erneut senden', remove: 'Entfernen',
    today: 'Heute', yesterday: 'Gestern',
    typing: '{name} schreibt…', someone: 'Support',
    queued: 'Sie sind Nummer {n} in der Warteschlange. Gleich ist jemand für Sie da.',
    queuedOffline: 'Gerade ist niemand online. Hinterlassen Sie Ihre Nachricht: Wir antworten hier, sobald wir zurück sind.',
    leaveEmail: 'Antwort auch per E-Mail erhalten:', save: 'Speichern', saved: 'Danke, wir schreiben an {email}.',
    reconnecting: 'Verbindung unterbrochen. Verbinde neu…', connecting: 'Verbinde…',
    unavailable: 'Der Chat ist gerade nicht verfügbar.',
    assigned: '{name} ist dem Gespräch beigetreten', transferred: 'Weitergeleitet an {name}',
    resolved: 'Das Gespräch wurde als gelöst markiert', reopened: 'Das Gespräch wurde wieder geöffnet',
    rated: 'Sie haben dieses Gespräch mit {score}/5 bewertet',
    rateQuestion: 'Wie bewerten Sie dieses Gespräch?', rateComment: 'Möchten Sie etwas ergänzen? (optional)',
    rateSend: 'Bewertung senden', rateThanks: 'Danke für Ihr Feedback!', star: '{n} von 5',
    transcript: 'Unterhaltung herunterladen', transcriptMail: 'Per E-Mail senden',
    newConversation: 'Neues Gespräch beginnen', newMessage: 'Neue Nachricht',
    you: 'Sie', messages: 'Nachrichten',
    attach: 'Dateien anhängen', removeFile: 'Entfernen', cancelUpload: 'Hochladen abbrechen', retryUpload: 'Erneut hochladen',
    fileTooLarge: '{name} ist zu groß: Dateien bis {max} sind möglich', tooManyFiles: 'Höchstens {n} Dateien pro Nachricht',
    onlyImages: 'Hier können nur Bilder gesendet werden', uploadNetwork: 'Netzwerk unterbrochen: erneut versuchen', uploadFailedSend: 'Einige Dateien wurden nicht hochgeladen: erneut versuchen oder entfernen.',
    fileDeleted: 'gelöscht', openImage: 'Bild {name} öffnen', closeViewer: 'Schließen', download: 'Herunterladen', dropFiles: 'Dateien hier ablegen, um sie zu senden'
  }
};

export function pickLocale(wanted) {
  const list = [wanted, ...(navigator.languages || [navigator.language])].filter(Boolean);
  for (const l of list) {
    const base = String(l).toLowerCase().split('-')[0];
    if (STRINGS[base]) return base;
  }
  return 'en';
}
