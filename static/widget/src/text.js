// @ts-check
/*
 * Every sentence a customer can meet in the widget, in one place. The error codes' and close codes'
 * sentences are shared (static/js/lib/errors.js); values are strings or functions of the event's details.
 */

import { CUSTOMER, CUSTOMER_CLOSES, seconds, sentenceFor } from "../../js/lib/errors.js";

// Every sentence a customer can meet, in one place. Codes are CONTRACTS.md §1, close codes the
// websocket's; values are strings or functions of the error's details.
export var TEXT = {
  codes: CUSTOMER,
  closes: CUSTOMER_CLOSES,
  notices: {
    // Signing in never carries a guest chat into the customer's account (whoever typed it on this
    // browser is not known to be them): the customer is told, so nothing seems lost.
    guest_chat_closed:
      "You're signed in. Messages you wrote before signing in aren't part of your account's chat, so please ask again here if you still need help.",
    // conversation.notice: the chat went back to the company's usual model (a model being tried stopped).
    model_changed:
      "We've switched this chat back to our usual assistant to keep answers reliable; your messages are all still here.",
  },
  status: {
    connecting: "Connecting…",
    reconnecting: "Reconnecting…",
    offline: "You're offline. We'll reconnect when you're back online.",
    stopped: "Chat is unavailable right now. Please reload the page to try again.",
  },
  stage: {
    looking_up: "Looking up our policies…",
    thinking: "Typing…",
    tool: "Working on your request…",
    composing: "Writing a short answer from these…",
    queued: "Many customers are asking right now. You're next in line…",
  },
  // Cards for changes the assistant proposed (tool runs that need a confirmation or an approval).
  tool: {
    confirm: "Confirm",
    cancel: "Cancel",
    ask: "Nothing changes until you confirm.",
    sending: "Sending…",
    agent: "Waiting for a colleague to approve",
    working: "In progress…",
    done: "Done",
    cancelled: "Cancelled",
    declined: "Declined",
    failed: "That didn't work, and nothing was changed.",
    untitled: "Request",
  },
  // Going to a person and back (docs/architecture/handoff.md). `d` is the stored event's data.
  handoff: {
    offer: "Talk to a person",
    asking: "Asking a person…",
    requested: "We've asked a person to join. They'll reply here as soon as they can.",
    queued: function (d) {
      var place = Number(d.position) > 0 ? "You're number " + Number(d.position) + " in line. " : "";
      var wait = waitPhrase(Number(d.expected_wait_seconds));
      return place + (wait ? "A person usually joins " + wait + "." : "A person will join as soon as they can.");
    },
    closed: function (d) {
      var hours = typeof d.hours === "string" && d.hours && d.hours !== "no live hours" ? " (hours: " + d.hours + ")" : "";
      var back = localMoment(d.next_open);
      return "Our team is offline right now" + hours + "." + (back ? " They're back " + back + "." : "");
    },
    noAgents: "Nobody from our team is available right now.",
    ticketOpened: function (d) {
      return "We've opened ticket #" + d.ticket + " and will email you at " + d.email + ".";
    },
    ticket: function (d) {
      return "Ticket #" + d.ticket + ": we'll email you at " + d.email + ".";
    },
    emailAsk: "Leave your email address and we'll answer you there. You can also keep writing here.",
    emailLabel: "Your email",
    emailSend: "Send",
    emailSendName: "Send email address",
    emailEmpty: "Please enter your email address.",
    emailInvalid: "That doesn't look like an email address.",
    sending: "Sending…",
    keepWaiting: "Continue with the assistant",
    leaving: "Going back to the assistant…",
    claimed: function (agent, company) {
      return agent + " from " + company + " has joined the conversation.";
    },
    toAgent: function (agent) {
      return agent + " has taken over the conversation.";
    },
    toTeam: function (team) {
      return "You've been passed to our " + team + " team.";
    },
    returned: "You're back with the assistant.",
    cancelled: "OK, you're back with the assistant.",
    stopped: "Stopped — a person is taking over.",
    someone: "A person",
    waitingHead: "Waiting for a person",
    humanHead: function (agent) {
      return "Chatting with " + agent;
    },
    byEmail: "Sent by email",
  },
  resolved: {
    line: "This conversation was marked as resolved.",
    reopened: "New conversation",
    ask: "How did we do?",
    rate: function (n) {
      return "Rate " + n + " out of 5";
    },
    comment: "Comment (optional)",
    send: "Send",
    sendName: "Send rating",
    choose: "Please choose a rating from 1 to 5.",
    thanks: "Thanks for your feedback.",
  },
  // Talking instead of typing, and answers read aloud (the voice section below).
  voice: {
    record: "Record a voice message",
    stop: "Stop recording",
    cancel: "Cancel",
    cancelName: "Cancel recording",
    recording: function (s) {
      return "Recording " + Math.floor(s / 60) + ":" + (s % 60 < 10 ? "0" : "") + (s % 60);
    },
    startedHold: "Recording. Release the button to stop, or press Escape to cancel.",
    started: "Recording. Press the button again to stop, or press Escape to cancel.",
    cancelled: "Recording discarded.",
    limit: function (s) {
      return "Recordings can be up to " + seconds(s) + " long, so we stopped there.";
    },
    transcribing: "Transcribing…",
    ready: "Your words are in the message box: check them, then press Enter to send.",
    tooShort:
      "That recording was too short. Hold the microphone button while you speak, or press it once to start and again to stop.",
    empty: "We couldn't hear anything in that recording. Please try again, closer to the microphone.",
    denied:
      "Your browser didn't allow the microphone. To talk instead of typing, allow microphone access for this site in your browser's settings.",
    noMic: "We couldn't find a microphone on this device. Please type your message instead.",
    busyMic: "Your microphone couldn't be started. It may be in use by another app.",
    failed: "We couldn't turn your recording into text. Please try again, or type your message.",
    unreachable: "We couldn't send your recording. Please check your connection and try again.",
    slow: "Transcribing is taking too long. Please try again, or type your message.",
    speak: "Read answers aloud",
  },
};

// "in under a minute", "within about 3 minutes": an honest, rounded wait.
export function waitPhrase(s) {
  if (!(s > 0)) return "";
  if (s < 60) return "in under a minute";
  var minutes = Math.round(s / 60);
  if (minutes < 60) return "within about " + (minutes === 1 ? "1 minute" : minutes + " minutes");
  var hours = Math.round(s / 3600);
  return "within about " + (hours === 1 ? "1 hour" : hours + " hours");
}

// A moment the desk sent (ISO 8601), in the visitor's own language and time zone.
export function localMoment(iso) {
  if (typeof iso !== "string" || !iso) return "";
  var date = new Date(iso);
  if (isNaN(date.getTime())) return "";
  try {
    return new Intl.DateTimeFormat(undefined, {
      weekday: "long",
      month: "long",
      day: "numeric",
      hour: "numeric",
      minute: "2-digit",
    }).format(date);
  } catch (e) {
    return date.toLocaleString();
  }
}

/**
 * The customer's sentence for an error code (CONTRACTS.md §1).
 * @param {string | null | undefined} code
 * @param {Record<string, any>} [details]
 */
export function sentence(code, details) {
  return sentenceFor(CUSTOMER, code, details);
}
