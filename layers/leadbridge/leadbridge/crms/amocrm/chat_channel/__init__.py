"""amoCRM's Chats API: the stack's own chat channel (connect, signed messages in and out). Part of amoCRM; may import what crms/amocrm may."""
