"""Phrase banks and fixed snippets for `synthetic.dump` (the synthetic ShareGPT dump).

Everything here is plain data: natural sentences per language (long enough for fastText language
ID to classify a conversation correctly), code snippets per language, KaTeX expressions as small
trees, refusal boilerplate and the odd pasted things users put in prompts. Keeping the data apart
keeps the generator readable.
"""

from __future__ import annotations

# Share of conversations per language; English dominates the real 2023 dumps.
LANGUAGE_WEIGHTS: dict[str, float] = {
    "en": 0.75,
    "zh": 0.04,
    "es": 0.03,
    "fr": 0.03,
    "de": 0.025,
    "ja": 0.03,
    "ko": 0.025,
    "ru": 0.025,
    "pt": 0.025,
    "it": 0.02,
}

# First human turn of a conversation.
PROMPTS: dict[str, list[str]] = {
    "en": [
        "Write a Python function that checks whether a string is a palindrome.",
        "Can you give me a simple recipe for a vegetarian lasagna?",
        "I'm planning a week-long trip to Japan in April. What should I see?",
        "Explain the difference between a list and a tuple in Python.",
        "What caused the fall of the Western Roman Empire?",
        "Help me write a cover letter for a junior data analyst position.",
        "How do I solve the quadratic equation x^2 - 5x + 6 = 0?",
        "Summarize the main causes of World War I in a few paragraphs.",
        "What is the best way to learn SQL joins as a beginner?",
        "Write a short poem about autumn leaves and old friends.",
        "How can I make my sourdough bread rise better in a cold kitchen?",
        "Explain recursion to me like I'm five.",
        "What are some budget-friendly things to do in Lisbon?",
        "Can you proofread this paragraph and make it sound more professional?",
        "Why does my React component re-render every time the parent updates?",
        "What is the derivative of sin(x) * e^x?",
        "Give me a 3-day itinerary for Rome with kids.",
        "How did the printing press change Europe in the 15th century?",
        "Write a bash script that backs up my home directory every night.",
        "What's the difference between baking soda and baking powder?",
        "Explain how a hash map works under the hood.",
        "Can you suggest a title for my blog post about remote work?",
        "How do I convert a pandas DataFrame column from string to datetime?",
        "What are the pros and cons of learning Rust in 2023?",
        "Write a story about a robot who wants to become a chef.",
        "write me an email to my landlord asking to fix the heating",
        "whats the fastest way to reverse a linked list in java",
    ],
    "zh": [
        "请帮我写一个Python函数，用来判断一个字符串是不是回文。",
        "你能推荐几道适合初学者的家常菜吗？",
        "我下个月要去成都旅游，有哪些必去的景点和美食？",
        "请解释一下什么是递归，最好举个简单的例子。",
        "秦始皇统一六国对中国历史有什么影响？",
        "帮我写一封求职信，应聘软件工程师的职位。",
        "如何用配方法解一元二次方程？",
        "请用通俗的语言解释一下机器学习和深度学习的区别。",
        "我想学习SQL，应该从哪里开始？",
        "写一首关于春天和故乡的短诗。",
        "红烧肉怎么做才能肥而不腻？",
        "请帮我修改这段文字，让它读起来更通顺一些。",
        "为什么我的网页在手机上显示不正常？",
        "唐朝为什么被认为是中国古代最繁荣的朝代之一？",
        "去日本旅游需要提前准备哪些东西？",
        "怎样才能提高写作能力？有什么好的练习方法吗？",
    ],
    "es": [
        "¿Puedes escribir una función en Python que compruebe si una palabra es un palíndromo?",
        "Dame una receta sencilla de tortilla de patatas, por favor.",
        "Voy a viajar a México en verano, ¿qué lugares me recomiendas visitar?",
        "¿Cuál es la diferencia entre una lista y una tupla en Python?",
        "¿Por qué cayó el Imperio romano de Occidente?",
        "Ayúdame a escribir una carta de presentación para un puesto de analista de datos.",
        "¿Cómo se resuelve una ecuación de segundo grado paso a paso?",
        "Explícame qué es la inteligencia artificial con palabras sencillas.",
        "¿Qué libros me recomiendas para aprender a escribir mejor?",
        "Escribe un poema corto sobre el mar y la nostalgia.",
        "¿Cómo puedo hacer que mi paella quede con el arroz en su punto?",
        "¿Qué debo visitar en Madrid si solo tengo dos días?",
        "Corrige este texto y hazlo sonar más profesional.",
        "¿Qué consecuencias tuvo la llegada de Colón a América?",
        "¿Cómo puedo conectar una base de datos MySQL con Node.js?",
        "Necesito ideas para una presentación sobre el cambio climático.",
    ],
    "fr": [
        "Peux-tu écrire une fonction Python qui vérifie si un mot est un palindrome ?",
        "Donne-moi une recette simple de quiche lorraine.",
        "Je pars à Lyon le week-end prochain, qu'est-ce que je dois absolument visiter ?",
        "Quelle est la différence entre une liste et un tuple en Python ?",
        "Quelles ont été les principales causes de la Révolution française ?",
        "Aide-moi à rédiger une lettre de motivation pour un poste de développeur web.",
        "Comment résoudre une équation du second degré avec le discriminant ?",
        "Explique-moi simplement ce qu'est l'apprentissage automatique.",
        "Comment améliorer mon style d'écriture quand je rédige des rapports ?",
        "Écris un court poème sur la pluie à Paris.",
        "Pourquoi ma pâte à crêpes a-t-elle des grumeaux ?",
        "Quels sont les meilleurs endroits à visiter en Bretagne ?",
        "Peux-tu corriger les fautes dans ce paragraphe ?",
        "Comment fonctionne une requête SQL avec une jointure ?",
        "Quel a été le rôle de Napoléon dans l'histoire de l'Europe ?",
        "J'ai besoin d'idées pour un discours de mariage drôle et touchant.",
    ],
    "de": [
        "Kannst du eine Python-Funktion schreiben, die prüft, ob ein Wort ein Palindrom ist?",
        "Gib mir bitte ein einfaches Rezept für Kartoffelsalat.",
        "Ich fahre nächsten Monat nach Berlin. Was sollte ich mir unbedingt ansehen?",
        "Was ist der Unterschied zwischen einer Liste und einem Tupel in Python?",
        "Warum ist die Weimarer Republik gescheitert?",
        "Hilf mir, ein Anschreiben für eine Stelle als Softwareentwickler zu verfassen.",
        "Wie löse ich eine quadratische Gleichung mit der pq-Formel?",
        "Erkläre mir bitte in einfachen Worten, was maschinelles Lernen ist.",
        "Wie kann ich meinen Schreibstil für wissenschaftliche Arbeiten verbessern?",
        "Schreib ein kurzes Gedicht über den Herbst im Wald.",
        "Warum wird mein Brot beim Backen immer so trocken?",
        "Welche Sehenswürdigkeiten gibt es in München für Familien mit Kindern?",
        "Kannst du diesen Text korrigieren und etwas professioneller formulieren?",
        "Wie funktioniert ein JOIN in SQL?",
        "Welche Rolle spielte Martin Luther bei der Reformation?",
        "Ich brauche Ideen für eine Geburtstagsrede für meinen Vater.",
    ],
    "ja": [
        "文字列が回文かどうかを判定するPythonの関数を書いてください。",
        "初心者でも簡単に作れる和食のレシピを教えてください。",
        "来月京都に旅行に行きます。おすすめの観光スポットはどこですか？",
        "Pythonのリストとタプルの違いを教えてください。",
        "明治維新は日本の社会にどのような影響を与えましたか？",
        "エンジニア職に応募するための志望動機を一緒に考えてください。",
        "二次方程式の解の公式の使い方を説明してください。",
        "機械学習とは何か、わかりやすく説明してもらえますか？",
        "文章を書くのが苦手なのですが、上達するコツはありますか？",
        "桜と別れをテーマにした短い詩を書いてください。",
        "カレーをもっと美味しく作るにはどうすればいいですか？",
        "北海道を一週間で回るならどんなルートがいいですか？",
        "この文章をもっと自然な日本語に直してください。",
        "SQLで二つのテーブルを結合するにはどうすればいいですか？",
        "江戸時代の人々はどのような暮らしをしていたのですか？",
        "結婚式のスピーチで使える面白いエピソードのアイデアをください。",
    ],
    "ko": [
        "문자열이 회문인지 확인하는 파이썬 함수를 작성해 주세요.",
        "초보자도 쉽게 만들 수 있는 김치찌개 레시피를 알려 주세요.",
        "다음 달에 부산으로 여행을 가는데 꼭 가봐야 할 곳이 어디인가요?",
        "파이썬에서 리스트와 튜플의 차이점은 무엇인가요?",
        "조선 시대 세종대왕의 가장 큰 업적은 무엇인가요?",
        "개발자 직무에 지원하기 위한 자기소개서를 함께 써 주세요.",
        "이차방정식을 근의 공식으로 푸는 방법을 설명해 주세요.",
        "머신러닝이 무엇인지 쉽게 설명해 줄 수 있나요?",
        "글쓰기 실력을 늘리려면 어떻게 연습해야 하나요?",
        "가을 바다를 주제로 짧은 시를 써 주세요.",
        "된장찌개를 더 맛있게 끓이는 비법이 있나요?",
        "제주도에서 3일 동안 여행하기 좋은 코스를 추천해 주세요.",
        "이 문장을 좀 더 자연스럽게 고쳐 주세요.",
        "SQL에서 두 테이블을 조인하려면 어떻게 해야 하나요?",
        "한국 전쟁은 왜 일어났고 어떤 결과를 남겼나요?",
        "친구 결혼식 축사에 쓸 만한 재미있는 아이디어가 있을까요?",
    ],
    "ru": [
        "Напиши функцию на Python, которая проверяет, является ли строка палиндромом.",
        "Подскажи простой рецепт борща для начинающих.",
        "Я собираюсь поехать в Санкт-Петербург летом. Что обязательно стоит посмотреть?",
        "В чём разница между списком и кортежем в Python?",
        "Каковы были причины распада Советского Союза?",
        "Помоги написать сопроводительное письмо на должность программиста.",
        "Как решить квадратное уравнение через дискриминант?",
        "Объясни простыми словами, что такое машинное обучение.",
        "Как научиться писать тексты понятнее и интереснее?",
        "Напиши короткое стихотворение о зимнем вечере.",
        "Почему мои блины всегда рвутся на сковороде?",
        "Какие места стоит посетить на Байкале?",
        "Исправь, пожалуйста, ошибки в этом тексте.",
        "Как работает объединение таблиц в SQL?",
        "Какую роль сыграл Пётр Первый в истории России?",
        "Мне нужны идеи для тоста на юбилей бабушки.",
    ],
    "pt": [
        "Pode escrever uma função em Python que verifica se uma palavra é um palíndromo?",
        "Me passa uma receita simples de feijoada, por favor.",
        "Vou viajar para Lisboa nas férias. Quais lugares não posso deixar de visitar?",
        "Qual é a diferença entre uma lista e uma tupla em Python?",
        "Quais foram as causas da independência do Brasil?",
        "Me ajude a escrever uma carta de apresentação para uma vaga de desenvolvedor.",
        "Como resolver uma equação do segundo grau usando a fórmula de Bhaskara?",
        "Você pode explicar de forma simples o que é aprendizado de máquina?",
        "Como posso melhorar a minha escrita para textos acadêmicos?",
        "Escreva um poema curto sobre saudade e o mar.",
        "Por que o meu pão de queijo fica murcho depois de assar?",
        "O que fazer no Rio de Janeiro em três dias?",
        "Pode corrigir os erros deste parágrafo e deixá-lo mais formal?",
        "Como funciona um JOIN no SQL?",
        "Qual foi a importância das Grandes Navegações para Portugal?",
        "Preciso de ideias para um discurso de formatura.",
    ],
    "it": [
        "Puoi scrivere una funzione in Python che controlla se una parola è palindroma?",
        "Dammi una ricetta semplice per la pasta alla carbonara, per favore.",
        "Vado a Firenze il mese prossimo, cosa mi consigli di visitare?",
        "Qual è la differenza tra una lista e una tupla in Python?",
        "Quali furono le cause della caduta dell'Impero romano d'Occidente?",
        "Aiutami a scrivere una lettera di presentazione per un lavoro come sviluppatore.",
        "Come si risolve un'equazione di secondo grado con il delta?",
        "Spiegami in modo semplice che cos'è l'apprendimento automatico.",
        "Come posso migliorare il mio modo di scrivere?",
        "Scrivi una breve poesia sul tramonto al mare.",
        "Perché la mia pizza fatta in casa non diventa croccante?",
        "Cosa vedere in Sicilia in una settimana?",
        "Puoi correggere gli errori in questo testo?",
        "Come funziona una JOIN in SQL?",
        "Che ruolo ebbe Garibaldi nell'unificazione dell'Italia?",
        "Mi servono idee per un discorso di compleanno per mia madre.",
    ],
}

# Later human turns of a conversation.
FOLLOWUPS: dict[str, list[str]] = {
    "en": [
        "Can you explain that in more detail?",
        "Thanks! Can you make it shorter?",
        "That doesn't work, I get an error: TypeError: 'NoneType' object is not subscriptable",
        "continue",
        "Can you rewrite it in a more formal tone?",
        "What about the time complexity?",
        "Great, now add comments to the code.",
        "Can you give me another example?",
        "Translate that into Spanish please.",
        "Why is that the case?",
    ],
    "zh": [
        "能再详细解释一下吗？",
        "谢谢！能不能写得再简短一些？",
        "继续",
        "这段代码运行时报错了，怎么办？",
        "请再举一个例子。",
        "可以换一种更正式的语气吗？",
        "为什么会这样呢？",
        "好的，请把它翻译成英文。",
    ],
    "es": [
        "¿Puedes explicarlo con más detalle?",
        "Gracias, ¿puedes hacerlo más corto?",
        "Continúa, por favor.",
        "Me da un error al ejecutar el código, ¿qué hago?",
        "Dame otro ejemplo, por favor.",
        "¿Puedes escribirlo con un tono más formal?",
        "¿Por qué ocurre eso?",
        "Perfecto, ahora tradúcelo al inglés.",
    ],
    "fr": [
        "Peux-tu expliquer plus en détail ?",
        "Merci ! Tu peux faire plus court ?",
        "Continue, s'il te plaît.",
        "J'ai une erreur quand j'exécute le code, que faire ?",
        "Donne-moi un autre exemple.",
        "Peux-tu le reformuler sur un ton plus formel ?",
        "Pourquoi est-ce le cas ?",
        "Parfait, traduis-le en anglais maintenant.",
    ],
    "de": [
        "Kannst du das genauer erklären?",
        "Danke! Kannst du es etwas kürzer machen?",
        "Bitte weiter.",
        "Beim Ausführen bekomme ich eine Fehlermeldung, was soll ich tun?",
        "Gib mir noch ein Beispiel.",
        "Kannst du es formeller formulieren?",
        "Warum ist das so?",
        "Super, übersetze es jetzt bitte ins Englische.",
    ],
    "ja": [
        "もう少し詳しく説明してもらえますか？",
        "ありがとうございます。もっと短くまとめてください。",
        "続けてください。",
        "コードを実行したらエラーが出ました。どうすればいいですか？",
        "別の例も教えてください。",
        "もっと丁寧な言い方に書き直してください。",
        "どうしてそうなるのですか？",
        "では、それを英語に翻訳してください。",
    ],
    "ko": [
        "좀 더 자세히 설명해 주실 수 있나요?",
        "고마워요! 조금 더 짧게 줄여 주세요.",
        "계속해 주세요.",
        "코드를 실행하니까 오류가 나요. 어떻게 해야 하나요?",
        "다른 예시도 보여 주세요.",
        "좀 더 격식 있는 말투로 바꿔 주세요.",
        "왜 그런 건가요?",
        "좋아요, 이제 영어로 번역해 주세요.",
    ],
    "ru": [
        "Можешь объяснить подробнее?",
        "Спасибо! А можно покороче?",
        "Продолжай.",
        "При запуске кода появляется ошибка, что делать?",
        "Приведи ещё один пример.",
        "Можешь переписать это более официальным тоном?",
        "Почему так происходит?",
        "Отлично, теперь переведи это на английский.",
    ],
    "pt": [
        "Pode explicar com mais detalhes?",
        "Obrigado! Pode deixar mais curto?",
        "Continue, por favor.",
        "Está dando erro quando executo o código, o que eu faço?",
        "Me dê outro exemplo.",
        "Pode reescrever com um tom mais formal?",
        "Por que isso acontece?",
        "Ótimo, agora traduza para o inglês.",
    ],
    "it": [
        "Puoi spiegarlo più nel dettaglio?",
        "Grazie! Puoi renderlo più breve?",
        "Continua, per favore.",
        "Quando eseguo il codice ricevo un errore, cosa devo fare?",
        "Dammi un altro esempio.",
        "Puoi riscriverlo con un tono più formale?",
        "Perché succede questo?",
        "Perfetto, ora traducilo in inglese.",
    ],
}

# Sentences the assistant turns are assembled from (paragraphs, list items, quotes).
SENTENCES: dict[str, list[str]] = {
    "en": [
        "Sure! Here's a simple way to approach this problem.",
        "The key idea is to break the task into smaller steps and handle each one separately.",
        "A list is mutable, which means you can change its contents after creating it, while a "
        "tuple cannot be modified.",
        "Preheat the oven to 180°C (350°F) and lightly grease a baking dish with olive oil.",
        "Kyoto in April is beautiful, but the cherry blossom season is also the busiest time of "
        "the year.",
        "The fall of the Western Roman Empire was caused by a mix of economic decline, military "
        "pressure and political instability.",
        "In your cover letter, mention one or two concrete achievements instead of listing every "
        "task you have done.",
        "To solve the equation, factor it into (x - 2)(x - 3) = 0, which gives the solutions "
        "x = 2 and x = 3.",
        "World War I started after the assassination of Archduke Franz Ferdinand, but alliances "
        "and nationalism turned a regional conflict into a global war.",
        "An INNER JOIN returns only the rows that have matching values in both tables, while a "
        "LEFT JOIN keeps every row from the left table.",
        "Recursion is when a function calls itself to solve a smaller version of the same problem.",
        "Lisbon is one of the most affordable capitals in Western Europe, and many of its "
        "viewpoints are free.",
        "Baking soda needs an acid to react, whereas baking powder already contains one.",
        "A hash map stores key-value pairs in an array of buckets and uses a hash function to "
        "decide where each key goes.",
        "If the component re-renders too often, wrap the child in React.memo and make sure the "
        "props you pass are stable.",
        "The printing press made books cheaper and helped spread new ideas across Europe much "
        "faster than before.",
        "Keep in mind that this approach can be slow when the input is very large.",
        "Here are a few things you can try:",
        "I hope this helps! Let me know if you have any other questions.",
        'You can save this code in a file called "backup.sh" and run it from the terminal.',
        "Make sure the value of x is < 10 before calling the function, otherwise it will raise "
        "an error.",
        "Companies like AT&T and Procter & Gamble spend billions of dollars on R&D every year.",
        "In summary, both options have their pros and cons, and the right choice depends on your "
        "needs.",
        "The dough should rest in a warm place for at least two hours until it has doubled in "
        "size.",
        "A good title is short, specific and tells the reader exactly what they will get from the "
        "post.",
        "Rust has a steep learning curve, but its ownership model prevents whole classes of "
        "memory bugs.",
        "The robot had never tasted food, but it loved watching people smile when they ate.",
        "The leaves turned gold and red, and the old friends walked slowly through the park once "
        "again.",
        "Note that the function returns None if the input list is empty.",
        "Use pd.to_datetime with the format argument to make the conversion faster and more "
        "reliable.",
        "Each day of the itinerary includes one major sight in the morning and a relaxed activity "
        "in the afternoon.",
        "It's important to test your code with edge cases such as empty strings and very long "
        "inputs.",
        "The derivative of sin(x) * e^x is e^x (sin(x) + cos(x)) by the product rule.",
        "Don't forget to add a pinch of salt, because it balances the sweetness and brings out "
        "the flavor.",
        "Let's go through the solution step by step.",
    ],
    "zh": [
        "当然可以！下面是一个简单的实现方法。",
        "这个问题的关键在于把复杂的任务拆分成几个小步骤，然后逐一解决。",
        "递归是指一个函数在执行过程中调用它自己，通常需要一个明确的终止条件。",
        "首先把五花肉切成大小均匀的块，放入冷水锅中焯水，去除血沫。",
        "成都不仅有大熊猫基地，还有宽窄巷子和锦里古街，非常适合慢慢逛。",
        "秦始皇统一了文字、货币和度量衡，为后来的中央集权国家奠定了基础。",
        "在写求职信时，最好先简单介绍自己，然后重点说明你的相关经验和能力。",
        "配方法的核心思想是把方程变形为完全平方的形式，然后再开平方求解。",
        "机器学习是一种让计算机从数据中自动学习规律的方法，而深度学习是其中使用多层神经网络的一个分支。",
        "学习SQL可以先从最基本的查询语句开始，比如选择、过滤和排序。",
        "如果你的网页在手机上显示不正常，很可能是因为没有设置合适的视口标签。",
        "唐朝的经济和文化都非常发达，长安城也是当时世界上最大的城市之一。",
        "去日本旅游之前，建议提前办理签证、购买交通卡并预订好酒店。",
        "提高写作能力最有效的方法是多读多写，并且认真修改自己的文章。",
        "希望这些建议对你有所帮助，如果还有其他问题，欢迎随时提问。",
        "需要注意的是，这种方法在数据量很大的时候可能会比较慢。",
        "炒菜的时候火候非常重要，火太大容易糊，火太小又不够香。",
        "你可以把这段代码保存为一个文件，然后在命令行中运行它。",
        "总的来说，这两种方法各有优缺点，具体选择哪一种要看你的实际需求。",
        "春天的风吹过田野，让人想起小时候在故乡度过的那些日子。",
    ],
    "es": [
        "¡Claro! Aquí tienes una forma sencilla de resolverlo.",
        "La idea principal es dividir el problema en pasos más pequeños y resolver cada uno por "
        "separado.",
        "Una lista se puede modificar después de crearla, mientras que una tupla es inmutable.",
        "Primero, pela las patatas y córtalas en láminas finas antes de freírlas a fuego lento.",
        "Ciudad de México tiene museos increíbles, mercados llenos de color y una comida "
        "deliciosa.",
        "La caída del Imperio romano de Occidente se debió a una combinación de crisis "
        "económicas, presiones militares y problemas políticos internos.",
        "En la carta de presentación conviene destacar tus logros más importantes y explicar por "
        "qué te interesa el puesto.",
        "Para resolver una ecuación de segundo grado puedes usar la fórmula general o intentar "
        "factorizarla.",
        "La inteligencia artificial es un conjunto de técnicas que permiten a las máquinas "
        "aprender a partir de los datos.",
        "Es importante no remover el arroz mientras se cocina para que se forme el socarrat en el "
        "fondo de la paellera.",
        "Si solo tienes dos días en Madrid, te recomiendo visitar el Museo del Prado, el Parque "
        "del Retiro y la Plaza Mayor.",
        "La llegada de Colón a América cambió para siempre la historia de ambos continentes.",
        "Para conectar MySQL con Node.js puedes usar el paquete mysql2 y crear una conexión con "
        "los datos de tu servidor.",
        "Recuerda que la práctica constante es la mejor manera de mejorar tu escritura.",
        "Espero que esta información te sea útil; si tienes más preguntas, no dudes en preguntar.",
        "Ten en cuenta que este método puede ser lento cuando trabajas con muchos datos.",
        "En resumen, ambas opciones tienen ventajas y desventajas, y la elección depende de tus "
        "necesidades.",
        "Puedes guardar este código en un archivo y ejecutarlo desde la terminal.",
        "El mar siempre me recuerda los veranos de mi infancia y las tardes tranquilas junto a mi "
        "familia.",
        "Una buena presentación debe tener una introducción clara, algunos datos concretos y una "
        "conclusión que invite a actuar.",
    ],
    "fr": [
        "Bien sûr ! Voici une façon simple de résoudre ce problème.",
        "L'idée principale est de découper la tâche en petites étapes et de les traiter une par "
        "une.",
        "Une liste peut être modifiée après sa création, alors qu'un tuple est immuable.",
        "Commencez par préchauffer le four à 180 degrés et étalez la pâte brisée dans un moule "
        "beurré.",
        "Lyon est célèbre pour sa gastronomie, ses traboules et le quartier du Vieux-Lyon.",
        "La Révolution française s'explique par une crise financière grave, des inégalités "
        "sociales profondes et la diffusion des idées des Lumières.",
        "Dans une lettre de motivation, il est important de montrer que vous connaissez "
        "l'entreprise et que vos compétences correspondent au poste.",
        "Pour résoudre une équation du second degré, on calcule d'abord le discriminant, puis on "
        "en déduit le nombre de solutions.",
        "L'apprentissage automatique permet à un ordinateur d'apprendre à partir d'exemples sans "
        "être explicitement programmé.",
        "Pour éviter les grumeaux, versez le lait petit à petit en fouettant énergiquement.",
        "En Bretagne, ne manquez pas la côte de granit rose, Saint-Malo et les petits ports de "
        "pêche.",
        "Une jointure permet de combiner les lignes de deux tables à partir d'une colonne commune.",
        "Napoléon a profondément transformé les institutions françaises, notamment avec le Code "
        "civil.",
        "N'hésitez pas à relire votre texte à voix haute pour repérer les phrases trop longues.",
        "J'espère que ces informations vous seront utiles ; n'hésitez pas si vous avez d'autres "
        "questions.",
        "Notez que cette méthode peut devenir lente lorsque le volume de données est important.",
        "En résumé, les deux approches ont leurs avantages et leurs inconvénients.",
        "Vous pouvez enregistrer ce code dans un fichier et l'exécuter depuis le terminal.",
        "La pluie tombait doucement sur les toits de Paris pendant que la ville s'endormait.",
        "Un bon discours de mariage mélange des anecdotes amusantes et quelques mots sincères "
        "pour les mariés.",
    ],
    "de": [
        "Natürlich! Hier ist eine einfache Möglichkeit, das Problem zu lösen.",
        "Die Grundidee besteht darin, die Aufgabe in kleinere Schritte zu zerlegen und diese "
        "nacheinander zu bearbeiten.",
        "Eine Liste kann nach dem Erstellen verändert werden, während ein Tupel unveränderlich "
        "ist.",
        "Koche die Kartoffeln zuerst in Salzwasser und lass sie danach vollständig abkühlen.",
        "In Berlin solltest du unbedingt das Brandenburger Tor, die Museumsinsel und die East "
        "Side Gallery besuchen.",
        "Die Weimarer Republik scheiterte an wirtschaftlichen Krisen, politischer Gewalt und "
        "einer schwachen Verfassung.",
        "In einem Anschreiben solltest du kurz erklären, warum du dich für die Stelle "
        "interessierst und welche Erfahrungen du mitbringst.",
        "Mit der pq-Formel kannst du die Lösungen einer quadratischen Gleichung direkt berechnen, "
        "wenn sie in Normalform vorliegt.",
        "Maschinelles Lernen bedeutet, dass ein Computer aus Beispielen lernt, anstatt feste "
        "Regeln programmiert zu bekommen.",
        "Wenn das Brot zu trocken wird, ist die Backzeit oft zu lang oder die Temperatur im Ofen "
        "zu hoch.",
        "In München sind der Tierpark Hellabrunn und das Deutsche Museum besonders bei Kindern "
        "beliebt.",
        "Mit einem JOIN kannst du Zeilen aus zwei Tabellen anhand einer gemeinsamen Spalte "
        "verbinden.",
        "Martin Luther übersetzte die Bibel ins Deutsche und veröffentlichte seine berühmten "
        "Thesen im Jahr 1517.",
        "Lies deinen Text am besten laut vor, um zu lange oder unklare Sätze zu finden.",
        "Ich hoffe, diese Informationen helfen dir weiter. Wenn du noch Fragen hast, melde dich "
        "gerne.",
        "Beachte, dass diese Methode bei sehr großen Datenmengen langsam werden kann.",
        "Zusammenfassend haben beide Ansätze ihre Vor- und Nachteile.",
        "Du kannst den Code in einer Datei speichern und ihn anschließend im Terminal ausführen.",
        "Die bunten Blätter fallen leise auf den Waldboden, und die Luft riecht nach Regen und "
        "Pilzen.",
        "Eine gute Geburtstagsrede verbindet persönliche Erinnerungen mit ein paar humorvollen "
        "Momenten.",
    ],
    "ja": [
        "もちろんです！以下に簡単な方法を紹介します。",
        "ポイントは、大きな問題を小さなステップに分けて、一つずつ解決していくことです。",
        "リストは作成した後でも中身を変更できますが、タプルは変更することができません。",
        "まず玉ねぎをじっくり炒めて、甘みが出るまで弱火で加熱してください。",
        "京都では清水寺や伏見稲荷大社、嵐山の竹林などが特に人気のある観光地です。",
        "明治維新によって身分制度が廃止され、日本は急速に近代化を進めることになりました。",
        "志望動機では、その会社を選んだ理由と自分の経験がどのように役立つかを具体的に書くとよいでしょう。",
        "解の公式を使えば、どんな二次方程式でも解を求めることができます。",
        "機械学習とは、コンピューターが大量のデータからパターンを学び、予測や判断を行う技術のことです。",
        "文章を上達させるには、毎日少しずつでも書く習慣をつけることが大切です。",
        "北海道は広いので、移動時間を考えて無理のない計画を立てることをおすすめします。",
        "二つのテーブルを結合するには、共通の列を指定してJOINを使います。",
        "江戸時代の町人たちは長屋に住み、銭湯や芝居を楽しみながら暮らしていました。",
        "書いた文章を声に出して読むと、不自然な表現に気づきやすくなります。",
        "この情報がお役に立てば幸いです。ほかに質問があれば、お気軽にどうぞ。",
        "ただし、データの量が多い場合は処理に時間がかかることがあるので注意してください。",
        "まとめると、どちらの方法にもメリットとデメリットがあります。",
        "このコードをファイルに保存して、ターミナルから実行してみてください。",
        "桜の花びらが風に舞うたびに、あの日の別れを思い出します。",
        "スピーチでは、新郎新婦との思い出を短く具体的に話すと印象に残りやすいです。",
    ],
    "ko": [
        "물론이죠! 아래에 간단한 방법을 소개해 드릴게요.",
        "핵심은 큰 문제를 작은 단계로 나누어 하나씩 해결하는 것입니다.",
        "리스트는 만든 후에도 내용을 바꿀 수 있지만, 튜플은 한 번 만들면 수정할 수 없습니다.",
        "먼저 잘 익은 김치와 돼지고기를 냄비에 넣고 중간 불에서 충분히 볶아 주세요.",
        "부산에서는 해운대 해수욕장과 감천문화마을, 자갈치 시장을 꼭 방문해 보세요.",
        "세종대왕은 백성들이 쉽게 글을 배울 수 있도록 훈민정음을 만들었습니다.",
        "자기소개서에서는 지원 동기와 함께 본인의 경험이 회사에 어떻게 도움이 될지 구체적으로 쓰는 "
        "것이 좋습니다.",
        "근의 공식을 사용하면 어떤 이차방정식이든 해를 구할 수 있습니다.",
        "머신러닝은 컴퓨터가 데이터에서 규칙을 스스로 배우고 예측하는 기술입니다.",
        "글쓰기 실력을 키우려면 매일 조금씩이라도 꾸준히 쓰는 습관이 중요합니다.",
        "제주도에서는 성산일출봉과 한라산, 그리고 아름다운 해안 도로를 여유 있게 둘러보는 것을 "
        "추천합니다.",
        "두 테이블을 조인하려면 공통된 열을 기준으로 JOIN 구문을 사용하면 됩니다.",
        "한국 전쟁은 많은 사람들에게 깊은 상처를 남겼고, 한반도는 지금까지도 분단된 상태로 남아 "
        "있습니다.",
        "쓴 글을 소리 내어 읽어 보면 어색한 표현을 쉽게 찾을 수 있습니다.",
        "이 정보가 도움이 되었기를 바랍니다. 더 궁금한 점이 있으면 언제든지 물어보세요.",
        "다만 데이터가 아주 많을 때는 이 방법이 느려질 수 있다는 점에 주의하세요.",
        "정리하자면 두 가지 방법 모두 장점과 단점이 있습니다.",
        "이 코드를 파일로 저장한 다음 터미널에서 실행해 보세요.",
        "가을 바다 위로 노을이 번지면 지나간 여름의 기억이 천천히 밀려옵니다.",
        "축사에서는 친구와 함께했던 짧은 추억을 이야기하면 하객들이 더 공감할 수 있습니다.",
    ],
    "ru": [
        "Конечно! Вот простой способ решить эту задачу.",
        "Главная идея состоит в том, чтобы разбить задачу на небольшие шаги и решать их по "
        "очереди.",
        "Список можно изменять после создания, а кортеж является неизменяемым.",
        "Сначала сварите крепкий бульон, а затем добавьте нарезанную свёклу, капусту и картофель.",
        "В Санкт-Петербурге обязательно посетите Эрмитаж, Петропавловскую крепость и "
        "прогуляйтесь по Невскому проспекту.",
        "Распад Советского Союза был вызван экономическим кризисом, ростом национальных движений "
        "и ослаблением центральной власти.",
        "В сопроводительном письме важно коротко рассказать о своём опыте и объяснить, почему "
        "вас интересует эта компания.",
        "Чтобы решить квадратное уравнение, сначала нужно вычислить дискриминант, а потом найти "
        "корни по формуле.",
        "Машинное обучение позволяет компьютеру находить закономерности в данных без явного "
        "программирования правил.",
        "Блины рвутся, если сковорода недостаточно разогрета или в тесте слишком мало муки.",
        "На Байкале стоит побывать на острове Ольхон и увидеть прозрачный лёд зимой.",
        "Объединение таблиц позволяет соединить строки из двух таблиц по общему столбцу.",
        "Пётр Первый провёл масштабные реформы, основал Санкт-Петербург и создал регулярный флот.",
        "Перечитайте свой текст вслух, чтобы найти слишком длинные и запутанные предложения.",
        "Надеюсь, эта информация будет полезной. Если у вас остались вопросы, пишите.",
        "Обратите внимание, что этот метод может работать медленно на больших объёмах данных.",
        "Подводя итог, можно сказать, что у обоих подходов есть свои плюсы и минусы.",
        "Сохраните этот код в файл и запустите его из терминала.",
        "За окном тихо падал снег, и в доме пахло горячим чаем и свежей выпечкой.",
        "Хороший тост должен быть коротким, тёплым и немного смешным.",
    ],
    "pt": [
        "Claro! Aqui está uma forma simples de resolver isso.",
        "A ideia principal é dividir o problema em etapas menores e resolver cada uma delas "
        "separadamente.",
        "Uma lista pode ser alterada depois de criada, enquanto uma tupla é imutável.",
        "Primeiro, deixe o feijão de molho durante a noite e depois cozinhe com as carnes em fogo "
        "baixo.",
        "Em Lisboa, vale muito a pena visitar a Torre de Belém, o bairro de Alfama e provar os "
        "pastéis de nata.",
        "A independência do Brasil foi resultado de tensões políticas com Portugal e do desejo "
        "das elites locais por mais autonomia.",
        "Na carta de apresentação, destaque as suas principais conquistas e explique por que "
        "você se interessa pela vaga.",
        "Para usar a fórmula de Bhaskara, calcule primeiro o delta e depois substitua os valores "
        "na fórmula.",
        "Aprendizado de máquina é uma área da inteligência artificial em que o computador aprende "
        "padrões a partir dos dados.",
        "O pão de queijo costuma murchar quando a massa está mole demais ou quando o forno não "
        "está quente o suficiente.",
        "No Rio de Janeiro, não deixe de subir o Pão de Açúcar, visitar o Cristo Redentor e "
        "caminhar pela orla de Copacabana.",
        "Um JOIN permite combinar linhas de duas tabelas com base em uma coluna em comum.",
        "As Grandes Navegações transformaram Portugal em uma potência marítima e abriram novas "
        "rotas comerciais.",
        "Ler o texto em voz alta ajuda a encontrar frases longas demais ou confusas.",
        "Espero que essas informações sejam úteis; se tiver mais dúvidas, é só perguntar.",
        "Observe que esse método pode ficar lento quando há muitos dados.",
        "Em resumo, as duas abordagens têm vantagens e desvantagens.",
        "Você pode salvar este código em um arquivo e executá-lo pelo terminal.",
        "A saudade chega com as ondas do mar e fica comigo até o fim da tarde.",
        "Um bom discurso de formatura agradece aos professores e às famílias e fala com esperança "
        "sobre o futuro.",
    ],
    "it": [
        "Certo! Ecco un modo semplice per risolvere il problema.",
        "L'idea principale è dividere il compito in piccoli passaggi e affrontarli uno alla volta.",
        "Una lista può essere modificata dopo la creazione, mentre una tupla è immutabile.",
        "Per una carbonara perfetta bisogna mescolare le uova con il pecorino lontano dal fuoco.",
        "A Firenze non puoi perdere la Galleria degli Uffizi, il Duomo e una passeggiata sul "
        "Ponte Vecchio.",
        "La caduta dell'Impero romano d'Occidente fu causata da crisi economiche, invasioni e "
        "debolezza politica.",
        "Nella lettera di presentazione è importante spiegare perché ti interessa l'azienda e "
        "quali competenze puoi offrire.",
        "Per risolvere un'equazione di secondo grado si calcola prima il delta e poi si trovano "
        "le soluzioni con la formula.",
        "L'apprendimento automatico permette a un computer di imparare dai dati senza essere "
        "programmato in modo esplicito.",
        "Per avere una pizza croccante conviene scaldare il forno al massimo e usare una pietra "
        "refrattaria.",
        "In Sicilia ti consiglio di visitare Palermo, la Valle dei Templi ad Agrigento e le "
        "spiagge di San Vito Lo Capo.",
        "Una JOIN permette di unire le righe di due tabelle in base a una colonna in comune.",
        "Garibaldi guidò la spedizione dei Mille e contribuì in modo decisivo all'unità d'Italia.",
        "Rileggere il testo ad alta voce aiuta a trovare le frasi troppo lunghe o poco chiare.",
        "Spero che queste informazioni ti siano utili; se hai altre domande, chiedi pure.",
        "Tieni presente che questo metodo può diventare lento con grandi quantità di dati.",
        "In sintesi, entrambi gli approcci hanno vantaggi e svantaggi.",
        "Puoi salvare questo codice in un file ed eseguirlo dal terminale.",
        "Il sole scendeva lentamente sul mare e le barche tornavano in silenzio verso il porto.",
        "Un bel discorso di compleanno unisce ricordi affettuosi e qualche momento divertente.",
    ],
}

# Short noun phrases for headings, bold list leads and table headers.
TERMS: dict[str, list[str]] = {
    "en": [
        "Overview",
        "Step-by-step guide",
        "Ingredients",
        "Example code",
        "Key points",
        "Summary",
        "Things to see",
        "Common mistakes",
        "Time complexity",
        "Best practices",
        "Pros and cons",
        "Next steps",
    ],
    "zh": [
        "基本概念",
        "实现步骤",
        "注意事项",
        "示例代码",
        "常见问题",
        "总结",
        "准备材料",
        "推荐景点",
    ],
    "es": [
        "Conceptos básicos",
        "Pasos a seguir",
        "Ingredientes",
        "Ejemplo de código",
        "Consejos útiles",
        "Resumen",
        "Lugares recomendados",
        "Preguntas frecuentes",
    ],
    "fr": [
        "Notions de base",
        "Étapes à suivre",
        "Ingrédients",
        "Exemple de code",
        "Conseils pratiques",
        "Résumé",
        "Lieux à visiter",
        "Questions fréquentes",
    ],
    "de": [
        "Grundlagen",
        "Schritt für Schritt",
        "Zutaten",
        "Beispielcode",
        "Hinweise",
        "Zusammenfassung",
        "Sehenswürdigkeiten",
        "Häufige Fragen",
    ],
    "ja": [
        "基本的な考え方",
        "手順",
        "材料",
        "サンプルコード",
        "注意点",
        "まとめ",
        "おすすめスポット",
        "よくある質問",
    ],
    "ko": [
        "기본 개념",
        "진행 단계",
        "재료",
        "예제 코드",
        "주의할 점",
        "요약",
        "추천 장소",
        "자주 묻는 질문",
    ],
    "ru": [
        "Основные понятия",
        "Пошаговая инструкция",
        "Ингредиенты",
        "Пример кода",
        "Полезные советы",
        "Итоги",
        "Что посмотреть",
        "Частые вопросы",
    ],
    "pt": [
        "Conceitos básicos",
        "Passo a passo",
        "Ingredientes",
        "Exemplo de código",
        "Dicas úteis",
        "Resumo",
        "Lugares para visitar",
        "Perguntas frequentes",
    ],
    "it": [
        "Concetti di base",
        "Passaggi",
        "Ingredienti",
        "Esempio di codice",
        "Consigli utili",
        "Riepilogo",
        "Luoghi da visitare",
        "Domande frequenti",
    ],
}

# Refusal / AI boilerplate, the kind a cleaner's refusal filter is meant to catch.
REFUSALS: dict[str, list[str]] = {
    "en": [
        "As an AI language model, I cannot browse the internet or access real-time information.",
        "As an AI language model, I cannot provide medical advice, but I can share some general "
        "information.",
        "I'm sorry, but I cannot help with that request.",
        "I'm sorry, but I cannot generate content that promotes violence or harm.",
        "As an AI language model, I don't have personal opinions or feelings.",
        "I apologize, but as an AI language model, I cannot predict future stock prices.",
    ],
    "zh": ["作为一个AI语言模型，我无法访问互联网或获取实时信息。"],
    "es": ["Como modelo de lenguaje de IA, no puedo acceder a información en tiempo real."],
    "fr": ["En tant que modèle de langage IA, je ne peux pas naviguer sur Internet."],
    "de": ["Als KI-Sprachmodell kann ich leider keine persönlichen Meinungen äußern."],
    "ja": ["AI言語モデルとして、私はリアルタイムの情報にアクセスすることはできません。"],
    "ko": ["AI 언어 모델로서 저는 실시간 정보에 접근할 수 없습니다."],
    "ru": ["Как языковая модель ИИ, я не могу выходить в интернет."],
    "pt": ["Como um modelo de linguagem de IA, não posso acessar informações em tempo real."],
    "it": ["Come modello linguistico di intelligenza artificiale, non posso accedere a Internet."],
}

# Code blocks by hljs language name. Each ends with a newline, as ChatGPT's code blocks did.
CODE_SNIPPETS: dict[str, list[str]] = {
    "python": [
        "def add(a, b):\n    return a + b\n",
        "def is_palindrome(text):\n"
        '    cleaned = "".join(ch.lower() for ch in text if ch.isalnum())\n'
        "    return cleaned == cleaned[::-1]\n\n\n"
        'print(is_palindrome("A man, a plan, a canal: Panama"))  # True\n',
        "import pandas as pd\n\n\n"
        "def load_prices(path, *args, **kwargs):\n"
        "    # Parse the date column so we can resample later\n"
        "    df = pd.read_csv(path, *args, **kwargs)\n"
        "    df['date'] = pd.to_datetime(df['date'], format='%Y-%m-%d')\n"
        "    return df[df['price'] > 0 and df['qty'] < 1000]\n",
        "class Stack:\n"
        "    def __init__(self):\n"
        "        self._items = []\n\n"
        "    def push(self, item):\n"
        "        self._items.append(item)\n\n"
        "    def pop(self):\n"
        "        if not self._items:\n"
        '            raise IndexError("pop from empty stack")\n'
        "        return self._items.pop()\n",
    ],
    "javascript": [
        "const fetchUser = async (id) => {\n"
        "  const response = await fetch(`/api/users/${id}`);\n"
        "  if (!response.ok && response.status !== 404) {\n"
        '    throw new Error("Request failed: " + response.status);\n'
        "  }\n"
        "  return response.json();\n"
        "};\n",
        "function debounce(fn, delay = 300) {\n"
        "  let timer = null;\n"
        "  return (...args) => {\n"
        "    clearTimeout(timer);\n"
        "    timer = setTimeout(() => fn(...args), delay);\n"
        "  };\n"
        "}\n",
    ],
    "bash": [
        "#!/bin/bash\n"
        "# Nightly backup of the home directory\n"
        'BACKUP_DIR="/mnt/backup/$(date +%F)"\n'
        'mkdir -p "$BACKUP_DIR"\n'
        'tar -czf "$BACKUP_DIR/home.tar.gz" /home/user 2>/dev/null && echo "done"\n',
        'for f in *.log; do\n  if [ -s "$f" ]; then\n    gzip "$f"\n  fi\ndone\n',
    ],
    "sql": [
        "SELECT c.name, COUNT(o.id) AS order_count\n"
        "FROM customers c\n"
        "LEFT JOIN orders o ON o.customer_id = c.id\n"
        "WHERE o.created_at >= '2023-01-01'\n"
        "GROUP BY c.name\n"
        "HAVING COUNT(o.id) > 5\n"
        "ORDER BY order_count DESC;\n",
        "CREATE TABLE users (\n"
        "  id INT PRIMARY KEY AUTO_INCREMENT,\n"
        "  email VARCHAR(255) NOT NULL UNIQUE,\n"
        "  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP\n"
        ");\n",
    ],
    "java": [
        "import java.util.ArrayList;\n"
        "import java.util.List;\n\n"
        "public class Main {\n"
        "    public static void main(String[] args) {\n"
        "        List<String> names = new ArrayList<>();\n"
        '        names.add("Alice");\n'
        "        for (String name : names) {\n"
        '            System.out.println("Hello, " + name);\n'
        "        }\n"
        "    }\n"
        "}\n",
    ],
    "cpp": [
        "#include <iostream>\n"
        "#include <vector>\n\n"
        "int main() {\n"
        "    std::vector<int> v = {3, 1, 2};\n"
        "    for (int i = 0; i < v.size(); ++i) {\n"
        "        std::cout << v[i] << std::endl;  // print each value\n"
        "    }\n"
        "    return 0;\n"
        "}\n",
    ],
    "html": [
        "<!DOCTYPE html>\n"
        '<html lang="en">\n'
        "<head>\n"
        '  <meta charset="UTF-8">\n'
        "  <title>My Page</title>\n"
        "</head>\n"
        "<body>\n"
        "  <!-- main content -->\n"
        '  <div class="container">\n'
        "    <h1>Hello &amp; welcome</h1>\n"
        "    <button onclick=\"alert('hi')\">Click me</button>\n"
        "  </div>\n"
        "</body>\n"
        "</html>\n",
        '<form action="/login" method="post">\n'
        '  <input type="text" name="user_name" placeholder="Your name">\n'
        '  <script>alert("xss")</script>\n'
        "</form>\n",
    ],
}

# Text that ChatGPT put in code blocks it mislabelled (it guessed "vbnet" for e-mails a lot).
PLAIN_CODE_BLOCKS: list[tuple[str, str]] = [
    (
        "vbnet",
        "Subject: Follow-up on our meeting\n\nDear Ms. Smith,\n\nThank you for taking the time "
        "to meet with me yesterday.\n\nBest regards,\nJohn\n",
    ),
    ("makefile", "Input: [3, 1, 2]\nOutput: [1, 2, 3]\n"),
    ("arduino", "Traceback (most recent call last):\n  File <stdin>, line 1\nKeyError: 'id'\n"),
    ("css", ".container > .item { margin: 0 auto; }\n"),
]

# Raw snippets users pasted into prompts: never HTML-escaped in human turns.
HUMAN_PASTES: list[str] = [
    "<script>alert(1)</script>",
    '<div class="card"><p>Hello</p></div>',
    "if (a < b && c > d) { return x; }",
    "my_var_name = some_function(*args, **kwargs)",
    "SELECT * FROM users WHERE age > 18 AND name <> '';",
    "x = [i**2 for i in range(10) if i % 2 == 0]",
    "TypeError: Cannot read properties of undefined (reading 'map')",
    "__init__ vs __new__ ???",
    'The price is 5 < 10 & the tax is "included" (it\'s 20%).',
]

# Identifiers and fragments for inline <code> in assistant prose (escaped when rendered).
INLINE_CODE: list[str] = [
    "my_var_name",
    "*args",
    "**kwargs",
    "__init__",
    "df.groupby('city')",
    "<div>",
    "a < b && c > d",
    "React.memo",
    "SELECT *",
    "None",
    "git push --force",
]

LINKS: list[tuple[str, str]] = [
    ("https://docs.python.org/3/library/functions.html", "Python documentation"),
    ("https://developer.mozilla.org/en-US/docs/Web/JavaScript", "MDN Web Docs"),
    ("https://en.wikipedia.org/wiki/Printing_press", "Wikipedia"),
    ("https://www.japan-guide.com/", "japan-guide.com"),
    ("https://pandas.pydata.org/docs/", "pandas docs"),
    ("https://www.w3schools.com/sql/sql_join.asp?lang=en&ref=nav", "W3Schools"),
]

SYSTEM_PROMPTS: list[str] = [
    "You are a helpful assistant.",
    "You are ChatGPT, a large language model trained by OpenAI. Answer as concisely as possible."
    "\nKnowledge cutoff: 2021-09\nCurrent date: 2023-03-14",
]

# What a near-duplicate appends to an earlier prompt.
NEAR_DUPLICATE_TAILS: list[str] = [
    " please",
    " Thanks!",
    " in detail",
    " (short answer)",
    "??",
    " asap",
    " Keep it simple.",
]

# Short table cells that read the same in every language.
TABLE_CELLS: list[str] = ["Yes", "No", "O(n)", "O(log n)", "42", "3.5", "100 ms", "2023", "N/A"]


# KaTeX expressions as small trees: ("mi"|"mn"|"mo", text), ("sup"|"sub", base, [nodes]),
# ("frac", [numerator], [denominator]), ("sqrt", [nodes]). The generator renders both the
# MathML and the katex-html halves from the same tree, as KaTeX did.
def _sup(base: str, exp: str) -> tuple:
    kind = "mn" if exp.isdigit() else "mi"
    return ("sup", ("mi", base), [(kind, exp)])


MATH_EXPRESSIONS: list[tuple[str, list[tuple]]] = [
    ("x^2", [_sup("x", "2")]),
    ("a^2 + b^2 = c^2", [_sup("a", "2"), ("mo", "+"), _sup("b", "2"), ("mo", "="), _sup("c", "2")]),
    ("E = mc^2", [("mi", "E"), ("mo", "="), ("mi", "m"), _sup("c", "2")]),
    ("\\frac{a}{b}", [("frac", [("mi", "a")], [("mi", "b")])]),
    (
        "x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}",
        [
            ("mi", "x"),
            ("mo", "="),
            (
                "frac",
                [
                    ("mo", "−"),
                    ("mi", "b"),
                    ("mo", "±"),
                    ("sqrt", [_sup("b", "2"), ("mo", "−"), ("mn", "4"), ("mi", "a"), ("mi", "c")]),
                ],
                [("mn", "2"), ("mi", "a")],
            ),
        ],
    ),
    (
        "a_n = a_1 + (n - 1)d",
        [
            ("sub", ("mi", "a"), [("mi", "n")]),
            ("mo", "="),
            ("sub", ("mi", "a"), [("mn", "1")]),
            ("mo", "+"),
            ("mo", "("),
            ("mi", "n"),
            ("mo", "−"),
            ("mn", "1"),
            ("mo", ")"),
            ("mi", "d"),
        ],
    ),
    ("\\sqrt{2} \\approx 1.414", [("sqrt", [("mn", "2")]), ("mo", "≈"), ("mn", "1.414")]),
    ("x < 10", [("mi", "x"), ("mo", "<"), ("mn", "10")]),
    (
        "\\Delta = b^2 - 4ac",
        [
            ("mi", "Δ"),
            ("mo", "="),
            _sup("b", "2"),
            ("mo", "−"),
            ("mn", "4"),
            ("mi", "a"),
            ("mi", "c"),
        ],
    ),
]
