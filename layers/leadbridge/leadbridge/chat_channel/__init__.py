"""The cabinet's own site chat as an amoCRM chat channel (Chats API, "amojo"; seeds 002 and 003).

The service registers nothing by itself: amoCRM's support registers the channel and gives its id, code and secret
(stack configuration, Secrets Manager). Per integration the channel is connected to the account; visitors'
messages go in as signed ``new_message`` requests, and managers' replies come back on a signed hook.
"""
