// wavecore-channels.js: the browser client of wavecore's channels protocol
// (docs/channels.md). No dependencies. Reconnects with exponential backoff and
// jitter, and resubscribes every channel from the position of the last message it
// delivered, so an application sees every message once, in order, across dropped
// connections; when the server cannot replay what was missed (history too short, or
// a restarted server whose history was in memory), the channel's onRecoveryFailed
// callback says so instead of leaving a silent gap.
//
//   const client = new WavecoreChannels("ws://" + location.host + "/");
//   client.subscribe("chat:lobby", {
//     onMessage(data, position) { ... },        // each message once, in offset order
//     onRecoveryFailed(reason, position) { ... } // "too_old", "too_many" or "epoch_changed"
//   });
//   client.publish("chat:lobby", "hello").then(position => ...);
(function (global) {
  "use strict";

  class WavecoreChannels {
    // url: the WebSocket URL. options: minDelay and maxDelay (milliseconds) of the
    // reconnect backoff, onState(state) called with "connecting", "open", "closed".
    constructor(url, options) {
      options = options || {};
      this.url = url;
      this.minDelay = options.minDelay || 250;
      this.maxDelay = options.maxDelay || 10000;
      this.onState = options.onState || function () {};
      this.channels = new Map(); // name -> {handlers, epoch, offset}
      this.pending = new Map(); // publish id -> {resolve, reject}
      this.nextId = 1;
      this.attempt = 0;
      this.closed = false;
      this.socket = null;
      this.connect();
    }

    // Subscribes to `channel`; handlers: onMessage(data, {epoch, offset}),
    // onSubscribed({epoch, offset, recovered, replayed}), onRecoveryFailed(reason,
    // {epoch, offset}).
    subscribe(channel, handlers) {
      this.channels.set(channel, { handlers: handlers || {}, epoch: null, offset: 0 });
      this.sendSubscribe(channel);
    }

    unsubscribe(channel) {
      this.channels.delete(channel);
      this.send({ type: "unsubscribe", channel: channel });
    }

    // Publishes `data` (a string); resolves with the message's {epoch, offset}, rejects
    // with the server's error, or if the connection drops before the answer.
    publish(channel, data) {
      const id = this.nextId++;
      return new Promise((resolve, reject) => {
        if (!this.send({ type: "publish", channel: channel, data: data, id: id })) {
          reject(new Error("not connected"));
          return;
        }
        this.pending.set(id, { resolve: resolve, reject: reject });
      });
    }

    // The position of the last message delivered on `channel`, or null.
    position(channel) {
      const state = this.channels.get(channel);
      return state && state.epoch ? { epoch: state.epoch, offset: state.offset } : null;
    }

    close() {
      this.closed = true;
      if (this.socket) this.socket.close(1000, "client closed");
    }

    connect() {
      if (this.closed) return;
      this.onState("connecting");
      const socket = new WebSocket(this.url);
      this.socket = socket;
      socket.onopen = () => {
        this.attempt = 0;
        this.onState("open");
        for (const channel of this.channels.keys()) this.sendSubscribe(channel);
      };
      socket.onmessage = (event) => this.receive(event.data);
      socket.onclose = () => {
        if (this.socket !== socket) return;
        this.socket = null;
        for (const waiter of this.pending.values()) waiter.reject(new Error("connection lost"));
        this.pending.clear();
        this.onState("closed");
        if (this.closed) return;
        const ceiling = Math.min(this.maxDelay, this.minDelay * Math.pow(2, this.attempt++));
        setTimeout(() => this.connect(), ceiling / 2 + Math.random() * ceiling / 2);
      };
    }

    send(message) {
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
      this.socket.send(JSON.stringify(message));
      return true;
    }

    sendSubscribe(channel) {
      const state = this.channels.get(channel);
      const message = { type: "subscribe", channel: channel };
      if (state && state.epoch) message.since = { epoch: state.epoch, offset: state.offset };
      this.send(message);
    }

    receive(text) {
      let message;
      try {
        message = JSON.parse(text);
      } catch (e) {
        return;
      }
      const state = this.channels.get(message.channel);
      const position = { epoch: message.epoch, offset: message.offset };
      switch (message.type) {
        case "message":
          if (!state) return;
          // A message already delivered (it cannot happen with a correct server; kept
          // as a guard) is skipped.
          if (state.epoch === message.epoch && message.offset <= state.offset) return;
          state.epoch = message.epoch;
          state.offset = message.offset;
          if (state.handlers.onMessage) state.handlers.onMessage(message.data, position);
          break;
        case "subscribed":
          if (!state) return;
          if (message.recovered === false) {
            state.epoch = message.epoch;
            state.offset = message.offset;
            if (state.handlers.onRecoveryFailed) {
              state.handlers.onRecoveryFailed(message.reason, position);
            }
          } else if (!state.epoch) {
            state.epoch = message.epoch;
            state.offset = message.offset;
          }
          if (state.handlers.onSubscribed) state.handlers.onSubscribed(message);
          break;
        case "published": {
          const waiter = this.pending.get(message.id);
          this.pending.delete(message.id);
          if (waiter) waiter.resolve(position);
          break;
        }
        case "error": {
          const waiter = message.id !== undefined && this.pending.get(message.id);
          if (waiter) {
            this.pending.delete(message.id);
            waiter.reject(new Error(message.error));
          } else if (state && state.handlers.onError) {
            state.handlers.onError(message.error);
          }
          break;
        }
      }
    }
  }

  global.WavecoreChannels = WavecoreChannels;
  if (typeof module !== "undefined" && module.exports) module.exports = WavecoreChannels;
})(typeof window !== "undefined" ? window : globalThis);
