"""Methods: the registry of fine-tuning methods (`registry`: each `MethodSpec` with its knobs, how it is built on a
model, how Compare serves it, whether it merges and what it can continue from) and their explanation cards
(`cards`). Everything the rest of the code asks about a method is answered here; what a person reads about one (its
name, summary, card and knobs' help, in Korean and English) is in the catalogues' `methods.yaml`. Imports only the
catalogues (`workbench.i18n`) of the workbench (the config's types only for type checking); torch and peft load
inside the builders.
"""
