// Text clipboard with the game (only where the server says hello.clipboard: `[input]
// clipboard = true`). Ctrl+V (Cmd+V) on the picture: the browser's own paste is let happen
// (PlayerInput would have cancelled the key), its text goes to the server as {"type":
// "clipboard", "text"} and then the V press follows, so the game pastes what the player had.
// The server's {"type": "clipboard", "text"} (an X client copied) goes to the browser's
// clipboard where the browser lets the page write it (a focused page), and is kept in
// `lastCopy` either way. Texts over `maxBytes` of UTF-8 are not sent (the server caps too).

export class ClipboardBridge {
  constructor({ player, send, onStatus = () => {}, maxBytes = 2048 }) {
    this.player = player; // PlayerInput: its stage, keys and input()
    this.send = send;
    this.onStatus = onStatus;
    this.maxBytes = maxBytes;
    this.enabled = false;
    this.pasting = false;
    this.lastCopy = null;
    this.sent = 0;
  }

  attach() {
    const stage = this.player.stage;
    // capture: before PlayerInput's handler, which cancels the key (and with it the paste)
    stage.addEventListener(
      "keydown",
      (ev) => {
        if (!this.enabled || ev.code !== "KeyV" || !(ev.ctrlKey || ev.metaKey) || ev.repeat) return;
        ev.stopImmediatePropagation();
        this.pasting = true;
        setTimeout(() => {
          if (this.pasting) this.pasted(""); // no paste event came (nothing to paste)
        }, 500);
      },
      true,
    );
    document.addEventListener("paste", (ev) => {
      if (!this.enabled || document.activeElement !== stage) return;
      ev.preventDefault();
      this.pasted(ev.clipboardData ? ev.clipboardData.getData("text/plain") : "");
    });
  }

  pasted(text) {
    if (!this.pasting) return;
    this.pasting = false;
    if (text) {
      if (new TextEncoder().encode(text).length > this.maxBytes) this.onStatus(`clipboard: over ${this.maxBytes} bytes, not sent`);
      else {
        this.send({ type: "clipboard", text });
        this.sent++;
      }
    }
    // the V press the paste stood for, now that the text is there first
    this.player.keys.set("KeyV", { code: "KeyV", key: "v" });
    this.player.input("keydown", { code: "KeyV", key: "v", repeat: false }, true);
  }

  received(msg) {
    if (typeof msg.text !== "string") return;
    this.lastCopy = msg.text;
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(msg.text).catch(() => this.onStatus("copied in the game (the browser did not let the page write the clipboard)"));
    }
  }
}
