"""Lark grammars of the incdsl language, shipped inside the package."""
