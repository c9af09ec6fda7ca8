"""The product's own date formats where Django's differ from what its people read
(settings.FORMAT_MODULE_PATH); every other format is Django's for the language."""
