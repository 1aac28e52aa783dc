"""Seniority and department from a free-text job title (English and common German forms).

Job titles are the strongest fit signal a lead form collects, but they arrive as free text:
"CTO", "Sr. Software Engineer", "VP Sales", "head of it operations", "Leiter IT",
"Mktg Manager", "Vertriebsleiterin". The parser normalises the text (lower case, ASCII,
umlauts spelt out, dots dropped so "Sr." and "V.P." become words) and applies two ordered
rule lists; the first rule that matches wins. Rules are plain regular expressions so a data
scientist can read and extend them; every change should add a row to the test table.

Outcomes: a missing or placeholder title gives ("unknown", "unknown"); a title with no level
word is an "individual" contributor; a title with no function word is department "other".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

SENIORITIES: tuple[str, ...] = (
    "c_level",
    "vp",
    "director",
    "head",
    "manager",
    "senior",
    "individual",
    "junior",
    "intern",
    "unknown",
)

DEPARTMENTS: tuple[str, ...] = (
    "it",
    "engineering",
    "marketing",
    "sales",
    "operations",
    "support",
    "finance",
    "procurement",
    "hr",
    "executive",
    "product",
    "other",
    "unknown",
)

_PLACEHOLDERS = frozenset(
    {"", "select", "unknown", "n a", "na", "none", "null", "nan", "x", "tbd", "keine angabe"}
)

# "Assistant to the CEO" is an assistant, not a CEO: cut what follows "assistant to/of".
_ASSISTANT_TO = re.compile(
    r"\b(assistant|assistent|assistentin|assistenz|secretary|sekretaer|sekretaerin|"
    r"referent|referentin)\s+(to|of|for|der|des|vom|von)\b.*$"
)

_OWNER = r"(?<!product )(?<!process )(?<!data )(?<!business )(?<!budget )\bowner\b"

_SENIORITY_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(rx))
    for label, rx in (
        (
            "c_level",
            r"\b(ceo|cto|cio|cfo|coo|cmo|cso|cro|cpo|chro|ciso|cdo|cco|cxo)\b|\bchief\b"
            r"|\b(co ?)?founder\b|\bfounding\b|" + _OWNER + r"|\bpresident\b"
            r"|\bmanaging (director|partner|member)\b|\bgeschae?ftsfue?hrer(in)?\b"
            r"|\bgeschae?ftsleitung\b|\binhaber(in)?\b|\bvorstand|\b(mit)?gruender(in)?\b"
            r"|\bproprietor\b|\bentrepreneur\b|\bunternehmer(in)?\b",
        ),
        ("vp", r"\b(vp|svp|evp|avp|rvp|gvp|vice)\b"),
        (
            "director",
            r"\b(director|directors|dir|directeur|directora|prokurist(in)?)\b|direktor(in)?\b"
            r"|\bbereichsleiter(in)?\b|\bgeneral manager\b",
        ),
        (
            "manager",
            r"\b(team|gruppen|projekt|schicht)\s?leiter(in)?\b|\bteam\s?lead(er)?\b"
            r"|\bsupervisor\b|\bvorarbeiter(in)?\b",
        ),
        ("head", r"\bhead\b|leiter(in)?\b|\bleitung\b|\bleader\b"),
        (
            "intern",
            r"\b(intern|interns|internship|praktikant(in)?|werkstudent(in)?|working student"
            r"|student|apprentice|auszubildende(r)?|azubi|volontaer(in)?)\b",
        ),
        ("manager", r"manager(in)?\b|\b(mgr|mngr|managers)\b"),
        ("senior", r"\b(senior|sr|snr|principal|staff|lead|expert|experte|expertin)\b"),
        (
            "junior",
            r"\b(junior|jr|jnr|trainee|graduate|entry level|assistant|assistent(in)?"
            r"|assistenz|associate)\b",
        ),
    )
)

_DEPARTMENT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(rx))
    for label, rx in (
        # C-suite acronyms name their function directly.
        ("executive", r"\bceo\b|\bchief executive\b"),
        ("engineering", r"\bcto\b"),
        ("it", r"\b(cio|ciso|cdo)\b"),
        ("finance", r"\bcfo\b"),
        ("marketing", r"\bcmo\b"),
        ("sales", r"\b(cso|cro|cco)\b"),
        ("product", r"\bcpo\b"),
        ("hr", r"\bchro\b"),
        ("operations", r"\bcoo\b"),
        # Functions, most specific first ("sales operations" is sales, "it operations" is it).
        (
            "hr",
            r"\bhr\b|\bhuman (resources?|capital)\b|\bpeople\b|\btalent\b|\brecruit"
            r"|\bpersonal(leiter|abteilung|wesen|referent|chef|entwickl|manag|sachbearbeit"
            r"|berat|leitung)|\bpersonnel\b|\bpayroll\b|\blearning\b|\bhrbp\b"
            r"|\bcompensation\b|\bbenefits\b",
        ),
        (
            "finance",
            r"financ|finanz|\bcontroll|\baccount(ing|ant|ants)\b|buchhalt|\bbookkeep"
            r"|\btreasur|\baudit|\btax\b|\bsteuer(berat|recht|abteilung)?\b|\bkaufmaennisch"
            r"|\bcredit\b|\bbilling\b|\bfp and a\b|\bfpa\b|\binvestor relations\b"
            r"|rechnungswesen",
        ),
        (
            "procurement",
            r"\bprocure|\bpurchas|\bbuyer\b|einkauf|einkaeuf|\bsourcing\b|\bvendor\b"
            r"|\bsupplier\b|lieferant|beschaffung|\bcategory manag",
        ),
        (
            "marketing",
            r"marketing|\bmktg\b|\bmkt\b|\bmarcom|\bbrand|\bcommunications?\b|\bcomms\b"
            r"|\bpr\b|\bpublic relations\b|\bcontent\b|\bseo\b|\bsem\b|\bsocial media\b"
            r"|\bgrowth\b|\bdemand gen|\bcampaign|\bevents?\b|werbung|kommunikation"
            r"|\bpresse|\bcopywrit|\bmarketer",
        ),
        (
            "sales",
            r"\bsales\b|vertrieb|\bverkauf|\bverkaeufer|\baccount (executive|manag|director|lead)"
            r"|\bkey account|\bkam\b|\bbusiness development\b|\bbizdev\b|\b(bdr|sdr|bdm|ae)\b"
            r"|\bcommercial\b|\brevenue\b|\bpre ?sales\b|\bchannel\b|\bpartnerships?\b"
            r"|\bpartner (manag|account|sales)|aussendienst|innendienst|\bkundenberat"
            r"|geschaeftsentwicklung",
        ),
        (
            "it",
            r"\bit\b|\bit(leiter|leitung|abteilung|manag|administrat|berat|spezialist)|\bedv\b"
            r"|\bict\b|informatik|\binformation\b|\binfrastructure\b|\bsys ?admin"
            r"|\bsystem ?administrat|systemadministrat|\bsystems? (engineer|manag|analyst)"
            r"|\bnetwork|netzwerk|\bsecurity\b|\bcyber|\bdatabase|\bdba\b|\bcloud\b"
            r"|\bdigital\b|\berp\b|\bsap\b",
        ),
        ("operations", r"\bfield service\b|\bmaintenance\b|instandhaltung"),
        (
            "support",
            r"\bsupport\b|\bcustomer (service|success|care|experience)\b|kundenservice"
            r"|kundendienst|kundenbetreuung|\bservice\b|\bhelp ?desk\b|\bservice desk\b"
            r"|\bcall ?cent(er|re)\b|servicetechnik",
        ),
        (
            "product",
            r"\bproduct\b(?! engineer)|\bprodukt(?!ion)|\bproduct owner\b|\bux\b|\bui\b"
            r"|\buser experience\b",
        ),
        (
            "engineering",
            r"\bengineer|\bdeveloper|\bdevelopment\b|software|\bprogramm|entwickl|ingenieur"
            r"|\bdev ?ops\b|\bsre\b|\bqa\b|\bquality assurance\b|\btest(er|ing)?\b"
            r"|\barchite[ck]t|\br and d\b|\brnd\b|\bresearch|forschung|\btechnology\b"
            r"|\btechnical\b|\btechnik|\btechniker|\bfirmware\b|\bhardware\b|\bmechanical\b"
            r"|\belectrical\b|konstrukt|\bdata scien|\bmachine learning\b|\bml\b|\bai\b"
            r"|\bautomation\b|automatisierung|\bfull ?stack\b|\bfront ?end\b|\bback ?end\b"
            r"|\bweb\b|\bcoder\b|\bscientist\b",
        ),
        ("it", r"\bdata\b|\banalytics\b|\bbi\b|\bbusiness intelligence\b"),
        (
            "operations",
            r"\boperations?\b|\bops\b|\boperating\b|operativ|logisti|\bsupply chain\b"
            r"|\bproduction\b|produktion|\bmanufactur|fertigung|\bplant\b|\bwerk(s)?leit"
            r"|\bfacility\b|\bfacilities\b|\bquality\b|qualitaet|\bbetrieb|\bwarehouse\b"
            r"|\blager|\bfleet\b|\bprocess\b|prozess|\bproject\b|projekt|\bpmo\b"
            r"|\badministration\b|verwaltung|\boffice manag|\bback ?office\b",
        ),
        (
            "executive",
            r"\bfounder\b|\bfounding\b|" + _OWNER + r"|\bpresident\b"
            r"|\bmanaging (director|partner|member)\b|\bgeschae?ftsfue?hr|\bgeschae?ftsleitung"
            r"|\binhaber|\bvorstand|gruender|\bgeneral manager\b|\bpartner\b|\bproprietor\b"
            r"|\bentrepreneur\b|\bunternehmer|\bboard\b|\bexecutive director\b|\bchief\b"
            r"|\bstrategy\b|strategie",
        ),
    )
)

_SPELLINGS: tuple[tuple[str, str], ...] = (
    ("ä", "ae"),
    ("ö", "oe"),
    ("ü", "ue"),
    ("ß", "ss"),
    ("r&d", "rnd"),
    ("&", " and "),
    (".", ""),
)
_SEPARATORS = re.compile(r"[^a-z0-9]+")
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(senior |executive |assistant |associate )?vice ?president\b"), "vp"),
    (re.compile(r"\bvize ?praesident(in)?\b"), "vp"),
    (re.compile(r"\bhead of\b"), "head"),
)


def normalize_title(title: object) -> str:
    """Lower-case ASCII words separated by single spaces; "" for missing or placeholder."""
    if not isinstance(title, str):
        return ""
    text = title.strip().lower()
    for old, new in _SPELLINGS:
        text = text.replace(old, new)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = _SEPARATORS.sub(" ", text).strip()
    if text in _PLACEHOLDERS or not re.search(r"[a-z]", text):
        return ""
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text


# A bounded cache of a pure function of an immutable str (titles repeat across leads).
@lru_cache(maxsize=65536)
def parse_job_title(title: str | None) -> tuple[str, str]:
    """(seniority, department) for one job title; see the module docstring for the rules."""
    text = normalize_title(title)
    if not text:
        return "unknown", "unknown"
    text = _ASSISTANT_TO.sub(r"\1", text)
    seniority = next((lab for lab, rx in _SENIORITY_RULES if rx.search(text)), "individual")
    department = next((lab for lab, rx in _DEPARTMENT_RULES if rx.search(text)), "other")
    return seniority, department
