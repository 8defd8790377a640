"""What the synthetic speakers say: GRID-like commands and free sentences from word lists.

GRID (Cooke et al. 2006) sentences follow ``command colour preposition letter digit adverb``
("place blue at F two now"); 64 000 of them exist, enough to keep every clip's sentence unique.
Free sentences are 4-9 words drawn from a per-language list of common words: nonsense as prose,
but real words, so espeak-ng pronounces real phoneme sequences of that language.
"""

from __future__ import annotations

import numpy as np

GRID_GRAMMAR = (
    ("bin", "lay", "place", "set"),
    ("blue", "green", "red", "white"),
    ("at", "by", "in", "with"),
    tuple("ABCDEFGHIJKLMNOPQRSTUVXYZ"),  # GRID leaves out W, the only two-syllable letter
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ("again", "now", "please", "soon"),
)

WORDS = {
    "en": (
        "the people water morning think about which between house family before money small "
        "mother father river garden window paper yellow music beautiful voice over under maybe "
        "quickly very much should would could thought through bridge church judge vision measure "
        "pleasure fish chips thumb mouth north south weather whether very video foot book look "
        "moon blue two shoe ball hall car star far map cap back black apple happy open close "
        "phone five vine wolf wheel yes year jump orange eagle island idea ocean umbrella under"
    ).split(),
    "de": (
        "der die das und ich bin wir haben heute morgen abend wasser brot buch haus garten "
        "schule freund mutter vater kinder zeit jahr woche immer nie vielleicht schön groß klein "
        "gut schlecht rot blau grün weiß schwarz über unter zwischen spielen laufen sprechen "
        "fragen antworten machen möglich wirklich zusammen früh spät apfel fisch vogel mond"
    ).split(),
    "fr": (
        "le la les un une et je tu nous vous bonjour merci maison jardin fenêtre porte voiture "
        "ville pays monde enfant mère père ami temps jour nuit matin soir toujours jamais peut "
        "être beaucoup petit grand bleu rouge vert blanc noir manger boire parler chanter "
        "pomme poisson oiseau lune soleil musique livre table chaise eau feu vent"
    ).split(),
    "es": (
        "el la los las un una y yo tú nosotros hola gracias casa jardín ventana puerta coche "
        "ciudad país mundo niño madre padre amigo tiempo día noche mañana tarde siempre nunca "
        "quizás mucho poco grande pequeño azul rojo verde blanco negro comer beber hablar "
        "cantar manzana pescado pájaro luna sol música libro mesa silla agua fuego viento"
    ).split(),
    "it": (
        "il la lo gli un una e io tu noi ciao grazie casa giardino finestra porta macchina "
        "città paese mondo bambino madre padre amico tempo giorno notte mattina sera sempre mai "
        "forse molto poco grande piccolo azzurro rosso verde bianco nero mangiare bere parlare "
        "cantare mela pesce uccello luna sole musica libro tavolo sedia acqua fuoco vento"
    ).split(),
    "pt": (
        "o a os as um uma e eu tu nós olá obrigado casa jardim janela porta carro cidade país "
        "mundo criança mãe pai amigo tempo dia noite manhã tarde sempre nunca talvez muito "
        "pouco grande pequeno azul vermelho verde branco preto comer beber falar cantar maçã "
        "peixe pássaro lua sol música livro mesa cadeira água fogo vento"
    ).split(),
    "nl": (
        "de het een en ik jij wij hallo dank huis tuin raam deur auto stad land wereld kind "
        "moeder vader vriend tijd dag nacht morgen avond altijd nooit misschien veel weinig "
        "groot klein blauw rood groen wit zwart eten drinken praten zingen appel vis vogel "
        "maan zon muziek boek tafel stoel water vuur wind"
    ).split(),
}


def word_list_language(voice_language: str) -> str:
    """The :data:`WORDS` key for an espeak-ng language ("en-gb-scotland" -> "en", "pt-br" -> "pt")."""
    key = voice_language.split("-")[0]
    if key not in WORDS:
        raise ValueError(f"no word list for language {voice_language!r}; have {sorted(WORDS)}")
    return key


def grid_sentence(rng: np.random.Generator) -> str:
    """One GRID command, e.g. "place blue at F two now"."""
    return " ".join(str(rng.choice(words)) for words in GRID_GRAMMAR)


def free_sentence(rng: np.random.Generator, language: str = "en", min_words: int = 4,
                  max_words: int = 9) -> str:
    """``min_words``-``max_words`` random common words of ``language``, as one sentence."""
    words = WORDS[word_list_language(language)]
    count = int(rng.integers(min_words, max_words + 1))
    sentence = " ".join(str(words[i]) for i in rng.integers(0, len(words), count))
    return sentence[0].upper() + sentence[1:] + "."
