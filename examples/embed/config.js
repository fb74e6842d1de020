// Where the chat server is. `wsmschat serve` replaces this file with its own address when it serves
// the demo (on its demo listener, another origin than the console); edit it when you serve this
// folder from elsewhere.
window.WSMSCHAT_DEMO = { server: 'http://localhost:8080', site: 'demo' };
