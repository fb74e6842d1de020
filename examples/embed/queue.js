window.WsmsChat = window.WsmsChat || function () { (window.WsmsChat.q = window.WsmsChat.q || []).push(arguments); };
