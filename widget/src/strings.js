// The widget's strings and the choice of language. English is built in (and the fallback for
// any string a translation lacks); every other language is one module in i18n/, loaded only
// when it is the one shown. Every string is set as text (textContent), never parsed as HTML.

export const EN = {
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
  closed: 'We are closed now', backAt: 'back {when}', replyTime: 'We typically reply in {time}',
  queuedClosed: 'We are closed now. Leave your message: we will answer here when we are back ({when}).',
  yourConversations: 'Your conversations',
  openShort: 'Open', resolvedShort: 'Resolved',
  queuedOffline: 'No agent is online right now. Leave your message: we will answer here as soon as we are back.',
  leaveEmail: 'Get the reply by email too:', save: 'Save', saved: 'Thanks, we will write to {email}.',
  reconnecting: 'Connection lost. Reconnecting…', connecting: 'Connecting…',
  unavailable: 'The chat is not available right now.',
  quotaNew: 'Too many new conversations were started from your network. Please try again in {minutes} min.',
  quotaOpen: 'You already have several open conversations. Please continue in one of them.',
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
  };

// The languages there is a module for (i18n/<code>.js). Only these are ever imported: the
// page's data-locale and the browser's languages choose among them, never name a file.
export const LOCALES = ['en', 'de', 'fr', 'es', 'it', 'pt', 'nl', 'pl', 'tr', 'ja', 'ar'];
// Laid out right to left.
export const RTL = new Set(['ar']);

export function pickLocale(wanted) {
  const list = [wanted, ...(navigator.languages || [navigator.language])].filter(Boolean);
  for (const l of list) {
    const base = String(l).toLowerCase().split('-')[0];
    if (LOCALES.includes(base)) return base;
  }
  return 'en';
}

/** The strings for `locale` (one of LOCALES): English, or its module over English. */
export async function loadStrings(locale) {
  if (locale === 'en' || !LOCALES.includes(locale)) return EN;
  try {
    const m = await import(`./i18n/${locale}.js?v=__VERSION__`);
    return { ...EN, ...m.default };
  } catch (e) {
    console.error(`wsmschat: could not load the ${locale} strings; showing English`, e);
    return EN;
  }
}
